// A node's credential in a Proxmox cluster: the cluster CA (`<root>/pve-root-ca.pem`), each node's
// certificate (`<root>/nodes/<node>/pve-ssl.pem`) and the local node's key (`<root>/local/pve-ssl.key`),
// as pve-cluster makes them. `certificateProblem` is the one check of a node certificate: signed by
// the cluster CA, inside its dates (with a clock skew allowance), naming the node.
import { X509Certificate, createPrivateKey, type KeyObject } from "node:crypto";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { LullError } from "../errors.js";
import { localNodeName } from "./members.js";

export const CLUSTER_CA_FILE = "pve-root-ca.pem";
export const NODE_CERT_FILE = "pve-ssl.pem";
export const NODE_KEY_FILE = "pve-ssl.key";

/** How far the two nodes' clocks may disagree about a certificate's dates. */
export const CERT_SKEW_MS = 60_000;

export interface NodeCredential {
  node: string;
  /** PEM of the node's certificate. */
  certPem: string;
  /** PEM of its private key. */
  keyPem: string;
  key: KeyObject;
  /** PEM of the cluster CA. */
  caPem: string;
}

export const nodeCertPath = (root: string, node: string) => join(root, "nodes", node, NODE_CERT_FILE);

const credentialError = (message: string, cause?: unknown) =>
  new LullError("LULL_E_NODE_CREDENTIAL", message, cause === undefined ? undefined : { cause });

async function readPem(path: string, what: string): Promise<string> {
  try {
    return await readFile(path, "utf8");
  } catch (err) {
    throw credentialError(`cannot read ${what} ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, err);
  }
}

/** Loads the local node's credential from the cluster file system at `root`. */
export async function loadNodeCredential(root: string, node?: string): Promise<NodeCredential> {
  const name = node ?? (await localNodeName(root));
  const caPem = await readPem(join(root, CLUSTER_CA_FILE), "the cluster CA");
  const certPem = await readPem(nodeCertPath(root, name), `node ${name}'s certificate`);
  const keyPem = await readPem(join(root, "local", NODE_KEY_FILE), "the local node key");
  let key: KeyObject;
  try {
    key = createPrivateKey(keyPem);
  } catch (err) {
    throw credentialError(`${join(root, "local", NODE_KEY_FILE)} is not a private key`, err);
  }
  const problem = certificateProblem(certPem, caPem, name, Date.now());
  if (problem !== undefined) throw credentialError(`the local node's certificate cannot be used: ${problem}`);
  if (!new X509Certificate(certPem).checkPrivateKey(key)) throw credentialError(`${join(root, "local", NODE_KEY_FILE)} is not the key of node ${name}'s certificate`);
  return { node: name, certPem, keyPem, key, caPem };
}

/** The DNS names and the CN a certificate names. */
export function certificateNames(cert: X509Certificate): string[] {
  const names: string[] = [];
  const cn = /(?:^|\n)CN=([^\n]+)/.exec(cert.subject)?.[1];
  if (cn !== undefined) names.push(cn.trim());
  for (const part of (cert.subjectAltName ?? "").split(", ")) {
    if (part.startsWith("DNS:")) names.push(part.slice(4));
  }
  return names;
}

/**
 * Why `certPem` is not a valid certificate of node `node` in the cluster of `caPem`, or undefined
 * when it is: issued and signed by that CA, inside its dates (± CERT_SKEW_MS), and naming the node
 * as a DNS name or its CN (pve-cluster puts the node name in the subjectAltName).
 */
export function certificateProblem(certPem: string, caPem: string, node: string, now: number): string | undefined {
  let cert: X509Certificate;
  let ca: X509Certificate;
  try {
    cert = new X509Certificate(certPem);
  } catch {
    return "the certificate is not a PEM certificate";
  }
  try {
    ca = new X509Certificate(caPem);
  } catch {
    return "the cluster CA is not a PEM certificate";
  }
  if (!cert.checkIssued(ca) || !cert.verify(ca.publicKey)) return "the certificate is not signed by the cluster CA";
  if (now + CERT_SKEW_MS < Date.parse(cert.validFrom)) return `the certificate is not valid before ${cert.validFrom}`;
  if (now - CERT_SKEW_MS > Date.parse(cert.validTo)) return `the certificate expired ${cert.validTo}`;
  if (!certificateNames(cert).some((n) => n.toLowerCase() === node.toLowerCase())) return `the certificate does not name node ${node}`;
  return undefined;
}
