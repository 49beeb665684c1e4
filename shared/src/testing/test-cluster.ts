// A cluster's credentials laid out as pve-cluster lays them out in /etc/pve, for tests: the cluster
// CA (`pve-root-ca.pem`, its key in `priv/pve-root-ca.key`) and each node's certificate and key
// (`nodes/<node>/pve-ssl.pem`, `pve-ssl.key`), issued as `gen_pve_ssl_cert` issues them (RSA,
// serverAuth only, the node name and address in the subjectAltName). Every node gets its own view
// of the file system (`rootOf(node)`): the shared files through symlinks, `local` leading to its
// own `nodes/<node>`, and a `.members` naming it as the local node, as each node's pmxcfs shows.
import { execFile } from "node:child_process";
import { mkdir, rename, symlink, unlink, writeFile } from "node:fs/promises";
import { isIP } from "node:net";
import { join } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

export interface TestClusterNode {
  name: string;
  /** The node's address in the member list (and its certificate). */
  ip: string;
}

const SHARED = ["pve-root-ca.pem", "priv", "nodes", "lull"];

async function openssl(args: string[]): Promise<void> {
  await run("openssl", args, { timeout: 60_000 });
}

/** Makes a CA (key and self-signed certificate) at `keyPath`/`certPath`. */
export async function makeTestCa(keyPath: string, certPath: string, days = 3650): Promise<void> {
  await openssl(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256", "-days", String(days), "-keyout", keyPath, "-out", certPath,
    "-subj", "/CN=Proxmox Virtual Environment/OU=test-cluster/O=PVE Cluster Manager CA",
    "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"]);
}

/** Issues a node certificate as pve-cluster does, signed by the CA at `caKey`/`caCert`. */
export async function issueNodeCertificate(o: { dir: string; node: string; ip: string; caKey: string; caCert: string; days?: number }): Promise<{ cert: string; key: string }> {
  const key = join(o.dir, "pve-ssl.key");
  const cert = join(o.dir, "pve-ssl.pem");
  const csr = join(o.dir, "pve-ssl.csr");
  const ext = join(o.dir, "pve-ssl.ext");
  const fqdn = `${o.node}.test.invalid`;
  const ipName = isIP(o.ip) ? `IP:${o.ip}` : `DNS:${o.ip}`;
  await writeFile(ext, [
    "basicConstraints=CA:FALSE",
    "keyUsage=nonRepudiation,digitalSignature,keyEncipherment",
    "extendedKeyUsage=serverAuth",
    `subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost,${ipName},DNS:${o.node},DNS:${fqdn}`,
    "",
  ].join("\n"));
  await openssl(["req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr, "-subj", `/OU=PVE Cluster Node/O=Proxmox Virtual Environment/CN=${fqdn}`]);
  await openssl(["x509", "-req", "-in", csr, "-CA", o.caCert, "-CAkey", o.caKey, "-set_serial", String(Date.now() * 1000 + Math.floor(Math.random() * 1000)),
    "-days", String(o.days ?? 700), "-sha256", "-extfile", ext, "-out", cert]);
  await unlink(csr);
  await unlink(ext);
  return { cert, key };
}

export class TestCluster {
  private constructor(
    /** The shared tree (what pmxcfs replicates). */
    readonly pveDir: string,
    private readonly viewsDir: string,
    private members: TestClusterNode[],
  ) {}

  /** Makes the CA, every node's certificate and each node's view under `dir`. */
  static async create(dir: string, nodes: readonly TestClusterNode[]): Promise<TestCluster> {
    const pveDir = join(dir, "pve");
    await mkdir(join(pveDir, "priv"), { recursive: true, mode: 0o700 });
    await mkdir(join(pveDir, "lull"), { recursive: true });
    const caKey = join(pveDir, "priv", "pve-root-ca.key");
    const caCert = join(pveDir, "pve-root-ca.pem");
    await makeTestCa(caKey, caCert);
    await Promise.all(
      nodes.map(async (n) => {
        const nodeDir = join(pveDir, "nodes", n.name);
        await mkdir(nodeDir, { recursive: true });
        await issueNodeCertificate({ dir: nodeDir, node: n.name, ip: n.ip, caKey, caCert });
      }),
    );
    const cluster = new TestCluster(pveDir, join(dir, "views"), [...nodes]);
    for (const n of nodes) {
      const view = cluster.rootOf(n.name);
      await mkdir(view, { recursive: true });
      for (const name of SHARED) await symlink(join(pveDir, name), join(view, name));
      await symlink(`nodes/${n.name}`, join(view, "local"));
    }
    await cluster.writeMembers();
    return cluster;
  }

  /** Node `node`'s /etc/pve. */
  rootOf(node: string): string {
    return join(this.viewsDir, node);
  }

  get caCertPath(): string {
    return join(this.pveDir, "pve-root-ca.pem");
  }

  get caKeyPath(): string {
    return join(this.pveDir, "priv", "pve-root-ca.key");
  }

  /** The cluster's members from now on (`pvecm delnode` / `addnode`): every node's `.members`. */
  async setMembers(nodes: readonly TestClusterNode[]): Promise<void> {
    this.members = [...nodes];
    await this.writeMembers();
  }

  private async writeMembers(): Promise<void> {
    const nodelist = Object.fromEntries(this.members.map((n, i) => [n.name, { id: i + 1, online: 1, ip: n.ip }]));
    const views = new Set([...this.members.map((n) => n.name)]);
    for (const name of views) {
      const doc = { nodename: name, version: 1, cluster: { name: "test", version: 1, nodes: this.members.length, quorate: 1 }, nodelist };
      const path = join(this.rootOf(name), ".members");
      await writeFile(`${path}.tmp`, JSON.stringify(doc, null, 1));
      await rename(`${path}.tmp`, path);
    }
  }
}
