// The agent's own CA and server certificate, like a Proxmox node's: made with the openssl CLI
// (through the CommandRunner, argv only) in `<dataDir>/tls` (0700; keys 0600) on first start.
// The CA lives ten years and is what controllers pin; the server certificate (SANs: the node name,
// 127.0.0.1, ::1 and `listen.names`) is re-issued by the same CA when its names change or it
// nears its end, so a pin survives that.
import { X509Certificate, randomBytes } from "node:crypto";
import { chmod, lstat, mkdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { isIP } from "node:net";
import { join } from "node:path";
import { LullError, certificateFingerprint, type Logger } from "@lull/shared";
import type { CommandRunner } from "@lull/shared";

export const TLS_DIR = "tls";
const OPENSSL_TIMEOUT_MS = 30_000;
const CA_DAYS = 3650;
const SERVER_DAYS = 825;
/** Re-issue the server certificate when it has less than this left. */
const RENEW_BEFORE_MS = 30 * 86_400_000;

export interface AgentTlsMaterial {
  /** PEM of the server's private key. */
  keyPem: string;
  /** PEM of the server certificate followed by the CA certificate. */
  certChainPem: string;
  caPem: string;
  /** `sha256:…` of the CA certificate: what controllers pin. */
  fingerprint: string;
  /** `sha256:…` of the current server certificate. */
  serverFingerprint: string;
  /** The names the server certificate covers. */
  names: string[];
}

export interface EnsureCertificatesOptions {
  /** `<dataDir>/tls`. */
  dir: string;
  node: string;
  /** Extra DNS names / IP addresses (`listen.names`). */
  names: readonly string[];
  runner: CommandRunner;
  log: Logger;
  now?: number;
  signal?: AbortSignal;
}

/** Node name, loopback addresses and configured names, de-duplicated, in a stable order. */
export function serverNames(node: string, extra: readonly string[]): string[] {
  return [...new Set([node, "localhost", "127.0.0.1", "::1", ...extra])];
}

function altNames(names: readonly string[]): string {
  return names.map((n) => (isIP(n) ? `IP:${n}` : `DNS:${n}`)).join(",");
}

/** An openssl config with fixed sections; every value in it was validated by the config schema. */
function opensslConfig(commonName: string, names: readonly string[]): string {
  return [
    "[req]",
    "distinguished_name = dn",
    "prompt = no",
    "[dn]",
    `CN = ${commonName}`,
    "[ca_ext]",
    "basicConstraints = critical,CA:TRUE,pathlen:0",
    "keyUsage = critical,keyCertSign,cRLSign",
    "subjectKeyIdentifier = hash",
    "[server_ext]",
    "basicConstraints = critical,CA:FALSE",
    "keyUsage = critical,digitalSignature,keyAgreement",
    "extendedKeyUsage = serverAuth",
    `subjectAltName = ${altNames(names)}`,
    "subjectKeyIdentifier = hash",
    "authorityKeyIdentifier = keyid",
    "",
  ].join("\n");
}

async function exists(path: string): Promise<boolean> {
  return lstat(path).then(
    () => true,
    () => false,
  );
}

async function privateDir(path: string): Promise<void> {
  await mkdir(path, { recursive: true, mode: 0o700 });
  const st = await lstat(path);
  if (!st.isDirectory()) throw new LullError("LULL_E_CONFIG_INVALID", `${path} is not a directory`);
  if (typeof process.getuid === "function" && st.uid !== process.getuid()) {
    throw new LullError("LULL_E_CONFIG_INVALID", `${path} is not owned by the agent's user`);
  }
  await chmod(path, 0o700);
}

export async function ensureAgentCertificates(o: EnsureCertificatesOptions): Promise<AgentTlsMaterial> {
  const now = o.now ?? Date.now();
  const names = serverNames(o.node, o.names);
  const file = (name: string) => join(o.dir, name);
  await privateDir(o.dir);
  const work = join(o.dir, `.new-${randomBytes(6).toString("hex")}`);
  const openssl = (args: string[]) => o.runner.run("openssl", args, { timeoutMs: OPENSSL_TIMEOUT_MS, ...(o.signal ? { signal: o.signal } : {}) });
  const ecKey = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  try {
    if (!(await exists(file("ca.crt"))) || !(await exists(file("ca.key")))) {
      await privateDir(work);
      await writeFile(join(work, "ca.cnf"), opensslConfig(`Lull agent CA ${o.node}`, names), { mode: 0o600 });
      await openssl(["req", "-config", join(work, "ca.cnf"), "-x509", "-new", ...ecKey, "-sha256", "-days", String(CA_DAYS),
        "-extensions", "ca_ext", "-keyout", join(work, "ca.key"), "-out", join(work, "ca.crt")]);
      await chmod(join(work, "ca.key"), 0o600);
      await rename(join(work, "ca.key"), file("ca.key"));
      await rename(join(work, "ca.crt"), file("ca.crt"));
      await rm(file("server.crt"), { force: true });
      o.log.info({ dir: o.dir, fingerprint: certificateFingerprint(await readFile(file("ca.crt"), "utf8")) }, "agent CA created");
    }
    const caPem = await readFile(file("ca.crt"), "utf8");
    const ca = new X509Certificate(caPem);

    const current = await readFile(file("server.crt"), "utf8").catch(() => undefined);
    const currentNames = await readFile(file("server.names"), "utf8").catch(() => "");
    const leaf = current ? new X509Certificate(current) : undefined;
    const fresh =
      leaf !== undefined &&
      (await exists(file("server.key"))) &&
      currentNames === names.join("\n") &&
      leaf.checkIssued(ca) &&
      leaf.verify(ca.publicKey) &&
      Date.parse(leaf.validTo) - now > RENEW_BEFORE_MS;
    if (!fresh) {
      await privateDir(work);
      await writeFile(join(work, "server.cnf"), opensslConfig(o.node, names), { mode: 0o600 });
      await openssl(["req", "-config", join(work, "server.cnf"), "-new", ...ecKey, "-keyout", join(work, "server.key"), "-out", join(work, "server.csr")]);
      await openssl(["x509", "-req", "-in", join(work, "server.csr"), "-CA", file("ca.crt"), "-CAkey", file("ca.key"),
        "-set_serial", `0x${randomBytes(16).toString("hex")}`, "-days", String(SERVER_DAYS), "-sha256",
        "-extfile", join(work, "server.cnf"), "-extensions", "server_ext", "-out", join(work, "server.crt")]);
      await chmod(join(work, "server.key"), 0o600);
      await writeFile(join(work, "server.names"), names.join("\n"), { mode: 0o600 });
      await rename(join(work, "server.key"), file("server.key"));
      await rename(join(work, "server.crt"), file("server.crt"));
      await rename(join(work, "server.names"), file("server.names"));
      o.log.info({ names }, "agent server certificate issued");
    }
    const serverPem = await readFile(file("server.crt"), "utf8");
    return {
      keyPem: await readFile(file("server.key"), "utf8"),
      certChainPem: `${serverPem.trimEnd()}\n${caPem.trimEnd()}\n`,
      caPem,
      fingerprint: certificateFingerprint(caPem),
      serverFingerprint: certificateFingerprint(serverPem),
      names,
    };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
