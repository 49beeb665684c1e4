import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { LullError } from "../errors.js";
import { TestCluster, issueNodeCertificate, makeTestCa } from "../testing/test-cluster.js";
import { certificateProblem, loadNodeCredential } from "./credential.js";
import { ASSERTION_MAX_AGE_MS, signNodeAssertion, verifyNodeAssertion } from "./node-assertion.js";

let dir: string;
let cluster: TestCluster;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), "lull-assertion-"));
  cluster = await TestCluster.create(dir, [
    { name: "pve1", ip: "10.9.0.1" },
    { name: "pve2", ip: "10.9.0.2" },
  ]);
});
after(() => rm(dir, { recursive: true, force: true }));

const refused = (why: RegExp) => (err: unknown) => err instanceof LullError && err.code === "LULL_E_NODE_CREDENTIAL" && why.test(err.message);

test("a node's assertion verifies with its certificate, for its audience, while it is recent", async () => {
  const pve1 = await loadNodeCredential(cluster.rootOf("pve1"));
  assert.equal(pve1.node, "pve1");
  const cert = new X509Certificate(pve1.certPem);
  const now = Date.now();
  const text = signNodeAssertion({ node: "pve1", audience: "pve2", key: pve1.key, now });
  const a = verifyNodeAssertion(text, { cert, audience: "pve2", now: now + 1_000 });
  assert.equal(a.node, "pve1");
  assert.equal(a.aud, "pve2");
  assert.notEqual(signNodeAssertion({ node: "pve1", audience: "pve2", key: pve1.key, now }), text, "a fresh nonce each time");

  assert.throws(() => verifyNodeAssertion(text, { cert, audience: "pve3", now }), refused(/meant for node pve2, not this node \(pve3\)/));
  assert.throws(() => verifyNodeAssertion(text, { cert, audience: "pve2", now: now + ASSERTION_MAX_AGE_MS + 1 }), refused(/older than 120 s/));
  assert.throws(() => verifyNodeAssertion(text, { cert, audience: "pve2", now: now - 120_000 }), refused(/in the future/));
  const [v, body, sig] = text.split(".") as [string, string, string];
  const forged = Buffer.from(JSON.stringify({ node: "pve2", aud: "pve2", iat: now, nonce: "x" })).toString("base64url");
  assert.throws(() => verifyNodeAssertion(`${v}.${forged}.${sig}`, { cert, audience: "pve2", now }), refused(/signature/));
  assert.throws(() => verifyNodeAssertion(`${v}.${body}`, { cert, audience: "pve2", now }), refused(/form/));
  const pve2 = await loadNodeCredential(cluster.rootOf("pve2"));
  assert.throws(() => verifyNodeAssertion(text, { cert: new X509Certificate(pve2.certPem), audience: "pve2", now }), refused(/signature/), "another node's certificate");
});

test("certificateProblem: the cluster CA's signature, the dates with a minute of skew, the node's name", async () => {
  const caPem = await readFile(cluster.caCertPath, "utf8");
  const certPem = await readFile(join(cluster.pveDir, "nodes", "pve1", "pve-ssl.pem"), "utf8");
  const now = Date.now();
  assert.equal(certificateProblem(certPem, caPem, "pve1", now), undefined);
  assert.match(certificateProblem(certPem, caPem, "pve2", now) ?? "", /does not name node pve2/);
  const validTo = Date.parse(new X509Certificate(certPem).validTo);
  assert.equal(certificateProblem(certPem, caPem, "pve1", validTo + 59_000), undefined, "within the skew");
  assert.match(certificateProblem(certPem, caPem, "pve1", validTo + 61_000) ?? "", /expired/);
  const validFrom = Date.parse(new X509Certificate(certPem).validFrom);
  assert.match(certificateProblem(certPem, caPem, "pve1", validFrom - 61_000) ?? "", /not valid before/);

  const other = join(dir, "other");
  await import("node:fs/promises").then((fs) => fs.mkdir(other, { recursive: true }));
  await makeTestCa(join(other, "ca.key"), join(other, "ca.pem"));
  const foreign = await issueNodeCertificate({ dir: other, node: "pve1", ip: "10.9.0.1", caKey: join(other, "ca.key"), caCert: join(other, "ca.pem") });
  assert.match(certificateProblem(await readFile(foreign.cert, "utf8"), caPem, "pve1", now) ?? "", /not signed by the cluster CA/);
});
