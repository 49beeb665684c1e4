// Who is calling: the operator (root on the node's local socket, or an operator token over the
// network), a controller holding a token scoped to one guest, optionally one stack of it, or
// another node's agent of the cluster (its node credential, on the cluster listener).
export type Principal =
  | {
      kind: "operator";
      /** Token id, or `local` for the unix socket. */
      id: string;
      via: "socket" | "token";
    }
  | {
      kind: "guest";
      id: string;
      guestId: string;
      /** A stack-scoped token acts only for this stack of the guest. */
      stack?: string | undefined;
    }
  | {
      kind: "node";
      /** `node:<name>`. */
      id: string;
      /** The calling node, as its certificate and the cluster's member list name it. */
      node: string;
    };

export const LOCAL_OPERATOR: Principal = Object.freeze({ kind: "operator", id: "local", via: "socket" });

/** What a token covers, for logs and `token list`: `operator`, `guest 101`, `guest 101 stack app`. */
export function describeScope(p: { kind: string; guestId?: string | undefined; stack?: string | undefined; node?: string | undefined }): string {
  if (p.kind === "operator") return "operator";
  if (p.kind === "node") return `node ${p.node}`;
  return p.stack ? `guest ${p.guestId} stack ${p.stack}` : `guest ${p.guestId}`;
}

/** Log fields of a principal (never a secret). */
export function principalFields(p: Principal): { principal: string; tokenId?: string } {
  if (p.kind === "node") return { principal: describeScope(p) };
  return p.kind === "operator" && p.via === "socket" ? { principal: "local-operator" } : { principal: describeScope(p), tokenId: p.id };
}
