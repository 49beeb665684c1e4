// The per-call proof that a node holds its certificate's key: a short statement (who, for which
// node, when, a nonce) signed with the node's own key (`pve-ssl.key`). It travels with the node's
// certificate in the call's metadata; the receiving agent checks both (agent/src/cluster/node-auth.ts).
// Text form: `v1.<base64url JSON>.<base64url signature>`, printable ASCII as gRPC metadata wants.
import { X509Certificate, randomBytes, sign, verify, type KeyObject } from "node:crypto";
import { LullError } from "../errors.js";

/** Metadata keys of a node-to-node call. */
export const NODE_CERT_KEY = "lull-node-cert";
export const NODE_ASSERTION_KEY = "lull-node-assertion";

/** How old an assertion may be (and how far in the future, for clock skew). */
export const ASSERTION_MAX_AGE_MS = 120_000;
export const ASSERTION_SKEW_MS = 60_000;

export interface NodeAssertion {
  /** The calling node. */
  node: string;
  /** The node the call is meant for. */
  aud: string;
  /** Issued at, ms since the epoch. */
  iat: number;
  nonce: string;
}

const b64 = (data: Buffer | string) => Buffer.from(data).toString("base64url");
const refused = (message: string) => new LullError("LULL_E_NODE_CREDENTIAL", message);

/** Signs a fresh assertion of `node` for a call to `audience`. */
export function signNodeAssertion(o: { node: string; audience: string; key: KeyObject; now: number }): string {
  const payload: NodeAssertion = { node: o.node, aud: o.audience, iat: o.now, nonce: randomBytes(12).toString("base64url") };
  const body = b64(JSON.stringify(payload));
  return `v1.${body}.${b64(sign("sha256", Buffer.from(body), o.key))}`;
}

/** A node's certificate as metadata (PEM has line breaks; metadata is one line). */
export const encodeCertificate = (certPem: string) => b64(certPem);
export const decodeCertificate = (value: string) => Buffer.from(value, "base64url").toString("utf8");

/**
 * Checks an assertion against the certificate that came with it: the signature is the
 * certificate's key's, it names `node`, it is meant for `audience`, and it is recent. Returns the
 * statement; throws LULL_E_NODE_CREDENTIAL saying what is wrong.
 */
export function verifyNodeAssertion(text: string, o: { cert: X509Certificate; audience: string; now: number }): NodeAssertion {
  const m = /^v1\.([A-Za-z0-9_-]{1,2048})\.([A-Za-z0-9_-]{1,2048})$/.exec(text);
  if (!m) throw refused("the node assertion is not of the form v1.<statement>.<signature>");
  const [, body, signature] = m as unknown as [string, string, string];
  let ok = false;
  try {
    ok = verify("sha256", Buffer.from(body), o.cert.publicKey, Buffer.from(signature, "base64url"));
  } catch {
    ok = false;
  }
  if (!ok) throw refused("the node assertion's signature is not made with the key of the certificate sent with it");
  let a: Partial<NodeAssertion>;
  try {
    a = JSON.parse(Buffer.from(body, "base64url").toString("utf8")) as Partial<NodeAssertion>;
  } catch {
    throw refused("the node assertion's statement is not JSON");
  }
  if (typeof a.node !== "string" || typeof a.aud !== "string" || typeof a.iat !== "number" || typeof a.nonce !== "string") {
    throw refused("the node assertion lacks node, aud, iat or nonce");
  }
  if (a.aud !== o.audience) throw refused(`the node assertion is meant for node ${a.aud}, not this node (${o.audience})`);
  if (a.iat > o.now + ASSERTION_SKEW_MS) throw refused("the node assertion is issued in the future: check the calling node's clock");
  if (o.now - a.iat > ASSERTION_MAX_AGE_MS) throw refused(`the node assertion is older than ${ASSERTION_MAX_AGE_MS / 1000} s: check the calling node's clock`);
  return a as NodeAssertion;
}
