// Authentication on the cluster listener: a node credential per call. The caller sends its node
// certificate and an assertion signed with that certificate's key (shared/src/cluster/node-assertion.ts);
// it is a node of this cluster when the certificate is signed by the cluster CA, is inside its
// dates, names the node the assertion names, the assertion is meant for this node and recent, its
// nonce was not seen before, and the node is in the cluster's member list. Anything else is
// LULL_E_NODE_CREDENTIAL, naming what failed.
import { X509Certificate } from "node:crypto";
import type { Metadata } from "@grpc/grpc-js";
import {
  ASSERTION_MAX_AGE_MS,
  ASSERTION_SKEW_MS,
  LullError,
  NODE_ASSERTION_KEY,
  NODE_CERT_KEY,
  certificateProblem,
  decodeCertificate,
  verifyNodeAssertion,
  type Clock,
} from "@lull/shared";
import type { Authenticate } from "../auth/guard.js";
import type { Principal } from "../auth/principal.js";
import type { NodeList } from "./node-list.js";

const MAX_VALUE = 16 * 1024;
const MAX_NONCES = 100_000;

const refused = (message: string) => new LullError("LULL_E_NODE_CREDENTIAL", message);

function one(metadata: Metadata, key: string, what: string): string {
  const values = metadata.get(key);
  if (values.length === 0) throw refused(`this is the cluster listener: a call needs a node credential (metadata ${key}, the calling node's ${what})`);
  const [value] = values;
  if (values.length !== 1 || typeof value !== "string" || value.length > MAX_VALUE) throw refused(`metadata ${key} is not one ${what}`);
  return value;
}

/** Nonces seen within an assertion's lifetime: a recorded call cannot be played again. */
class NonceCache {
  private readonly seen = new Map<string, number>();

  admit(nonce: string, now: number): boolean {
    if (this.seen.has(nonce)) return false;
    if (this.seen.size >= MAX_NONCES) {
      for (const [n, until] of this.seen) if (until < now) this.seen.delete(n);
      if (this.seen.size >= MAX_NONCES) return false;
    }
    this.seen.set(nonce, now + ASSERTION_MAX_AGE_MS + ASSERTION_SKEW_MS);
    return true;
  }
}

export function nodeAuthenticator(o: { self: string; nodes: NodeList; clock: Clock }): Authenticate {
  const nonces = new NonceCache();
  return (metadata): Principal => {
    const now = o.clock.now();
    const certPem = decodeCertificate(one(metadata, NODE_CERT_KEY, "certificate"));
    const assertion = one(metadata, NODE_ASSERTION_KEY, "signed assertion");
    let cert: X509Certificate;
    try {
      cert = new X509Certificate(certPem);
    } catch {
      throw refused(`metadata ${NODE_CERT_KEY} is not a certificate`);
    }
    const statement = verifyNodeAssertion(assertion, { cert, audience: o.self, now });
    const problem = certificateProblem(certPem, o.nodes.caPem(), statement.node, now);
    if (problem !== undefined) throw refused(`node ${statement.node}'s certificate is refused: ${problem} (pve-root-ca.pem of this cluster)`);
    o.nodes.check(statement.node);
    if (!nonces.admit(`${statement.node}/${statement.nonce}`, now)) throw refused("the node assertion was already used (a replayed call)");
    return { kind: "node", id: `node:${statement.node}`, node: statement.node };
  };
}
