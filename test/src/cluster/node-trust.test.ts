// Node-to-node trust and the cluster view, with three real agents, each in its own network
// namespace with its own address (test/src/cluster/netns.ts), a cluster CA and node certificates
// laid out as pve-cluster lays them out, and each node's /etc/pve view with its `.members`.
// A node's credential reads from the other agents and can do nothing else; forged, stale, misdirected
// or foreign credentials and removed nodes are refused; `lullctl --cluster` merges the three nodes,
// shows a cut-off node as unreachable (exit 4), and `events --follow --cluster` resumes each node
// after its own sequence number across that node's restart.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { Metadata } from "@grpc/grpc-js";
import { AgentClient } from "@lull/proto";
import {
  DEFAULT_CHANNEL_OPTIONS,
  LullError,
  NODE_ASSERTION_KEY,
  NODE_CERT_KEY,
  callUnary,
  fromServiceError,
  encodeCertificate,
  loadNodeCredential,
  nodeChannelCredentials,
  openClusterPeers,
  signNodeAssertion,
  type ClusterPeers,
  type NodeCredential,
} from "@lull/shared";
import { TestCluster, issueNodeCertificate, makeTestCa } from "@lull/shared/testing";
import { ENTRY_POINTS, makeTempDir, removeDir, sleep, startAgent, startProcess, waitFor, type AgentProcess } from "../support/index.js";
import { requireAvailable } from "../support/require.js";
import { ClusterNet, netnsUnavailable } from "./netns.js";

const NAMES = ["pve1", "pve2", "pve3"];
const guestOf = (i: number) => `${i + 1}01`;

let dir: string;
let net: ClusterNet;
let cluster: TestCluster;
const agents: AgentProcess[] = [];
let peers: ClusterPeers;

const members = () => NAMES.map((name, i) => ({ name, ip: net.nodes[i]!.ip }));

before(async () => {
  requireAvailable("network namespaces", netnsUnavailable());
  dir = await makeTempDir("lull-node-trust-");
  net = ClusterNet.create(3);
  cluster = await TestCluster.create(join(dir, "cluster"), members());
  await Promise.all(
    NAMES.map(async (name, i) => {
      const data = join(dir, name, "guest-data");
      await mkdir(data, { recursive: true });
      await writeFile(join(data, "file.txt"), `data of ${name}\n`);
      agents[i] = await startAgent({
        dir: join(dir, name),
        netns: net.nodes[i]!.ns,
        guests: [{ id: guestOf(i), driver: "dir", snapshot: "copy", volumes: [{ name: "data", path: data }] }],
        config: { node: name, cluster: { enabled: true }, schedules: { clusterRoot: cluster.rootOf(name) } },
        readyTimeoutMs: 30_000,
      });
    }),
  );
  // pve1's credential, from this test's namespace (routed to the nodes through the switch).
  peers = await openClusterPeers({ root: cluster.rootOf("pve1") });
});

after(async () => {
  peers?.close();
  await Promise.all(agents.map((a) => a?.stop().catch(() => undefined)));
  net?.destroy();
  if (dir) await removeDir(dir);
});

const nodeRefused = (why: RegExp) => (err: unknown) => err instanceof LullError && err.code === "LULL_E_NODE_CREDENTIAL" && why.test(err.message);

/** A raw call to `node`'s cluster listener with exactly the metadata given (TLS checked as a peer does). */
async function rawInfo(node: string, metadata: Record<string, string>): Promise<unknown> {
  const index = NAMES.indexOf(node);
  const client = new AgentClient(`${net.nodes[index]!.ip}:7451`, nodeChannelCredentials(await readFile(cluster.caCertPath, "utf8"), node), {
    ...DEFAULT_CHANNEL_OPTIONS,
    "grpc.ssl_target_name_override": node,
  });
  const md = new Metadata();
  for (const [k, v] of Object.entries(metadata)) md.set(k, v);
  try {
    return await callUnary(client.getAgentInfo.bind(client), {}, { metadata: md, timeoutMs: 5_000 });
  } finally {
    client.close();
  }
}

const credentialOf = (node: string) => loadNodeCredential(cluster.rootOf(node));
const metadataOf = (c: NodeCredential, audience: string, now = Date.now()) => ({
  [NODE_CERT_KEY]: encodeCertificate(c.certPem),
  [NODE_ASSERTION_KEY]: signNodeAssertion({ node: c.node, audience, key: c.key, now }),
});

test("a node's credential reads from another node's agent: info, jobs, backups, schedules, events", async () => {
  const pve2 = await peers.clientFor("pve2");
  const info = await pve2.getAgentInfo();
  assert.equal(info.node, "pve2");
  assert.deepEqual(info.guests.map((g) => g.id), ["201"], "a node sees the guests of the node it asks");
  assert.ok(Array.isArray((await pve2.listJobs({ guestId: "", activeOnly: false, limit: 0 })).jobs));
  assert.ok(Array.isArray((await pve2.listBackups({ guestId: "201", limit: 0 })).backups));
  assert.ok(Array.isArray((await pve2.listSchedules({ scheduleId: "", ticks: 0 })).schedules));
  const stop = new AbortController();
  const stream = pve2.watchEvents({ guestId: "", jobId: "", afterSeq: 0 }, stop.signal)[Symbol.asyncIterator]();
  const first = stream.next();
  await sleep(300);
  stop.abort();
  await first;
});

test("a node credential of node A cannot start a backup of a guest on node B as an operator, nor act on it otherwise", async () => {
  const pve2 = await peers.clientFor("pve2");
  const denied = (err: unknown) => err instanceof LullError && err.code === "LULL_E_PERMISSION_DENIED" && /node pve1 may only read/.test(err.message);
  await assert.rejects(pve2.startBackup({ guestId: "201", policy: 0, idempotencyKey: "", requestedBy: "pve1", quiesceTimeoutMs: 0 }), denied);
  await assert.rejects(pve2.cancelJob({ guestId: "201", jobId: "j-00000000000000000000000000", reason: "" }), denied);
  await assert.rejects(pve2.registerStack({ guestId: "201", stack: "app", controllerId: "x", leaseTtlMs: 0 }), denied);
  await assert.rejects(pve2.prunePoints({ guestId: "201", dryRun: false }), denied);
  const jobs = await agents[1]!.client().listJobs("201");
  assert.deepEqual(jobs, [], "no job was created on pve2");
});

test("a node credential cannot make another node back up a guest through a group that node does not define (JoinGroupRun)", async () => {
  const pve2 = await peers.clientFor("pve2");
  // pve2's config has no groups: pve1 asking 201 to join a run of "shop" is refused before anything is held.
  const call = pve2.raw.joinGroupRun({
    groupRunId: "g-00000000000000000000000000", groupId: "shop", guestId: "201", policy: 0, quiesceTimeoutMs: 0,
    requestedBy: "pve1", barrierSlackMs: 0, snapshotTimeoutMs: 0,
  });
  await assert.rejects(
    (async () => {
      for await (const _ of call as AsyncIterable<unknown>) void _;
    })(),
    (err: unknown) => {
      const e = fromServiceError(err);
      return e.code === "LULL_E_PERMISSION_DENIED" && /node pve1 asked guest 201 to join .*this node's config has no group shop.*define group shop on node pve2 too/.test(e.message);
    },
  );
  assert.deepEqual(await agents[1]!.client().listJobs("201"), [], "no job was created on pve2");
});

test("forged, stale, misdirected, replayed and foreign credentials, and a node removed from the cluster, are refused", async () => {
  const pve1 = await credentialOf("pve1");
  const pve3 = await credentialOf("pve3");
  assert.equal(((await rawInfo("pve2", metadataOf(pve1, "pve2"))) as { node: string }).node, "pve2", "the genuine credential passes");

  await assert.rejects(rawInfo("pve2", {}), nodeRefused(/needs a node credential/));
  await assert.rejects(rawInfo("pve2", { authorization: `Bearer ${"x".repeat(43)}` }), nodeRefused(/needs a node credential/), "a token is no node credential");
  // pve1's key signs a statement that claims pve3, sent with pve3's certificate.
  const claim = signNodeAssertion({ node: "pve3", audience: "pve2", key: pve1.key, now: Date.now() });
  await assert.rejects(rawInfo("pve2", { [NODE_CERT_KEY]: encodeCertificate(pve3.certPem), [NODE_ASSERTION_KEY]: claim }), nodeRefused(/signature/));
  // pve1's own certificate, with a statement claiming pve3: the certificate does not name pve3.
  const misnamed = signNodeAssertion({ node: "pve3", audience: "pve2", key: pve1.key, now: Date.now() });
  await assert.rejects(rawInfo("pve2", { [NODE_CERT_KEY]: encodeCertificate(pve1.certPem), [NODE_ASSERTION_KEY]: misnamed }), nodeRefused(/does not name node pve3/));
  await assert.rejects(rawInfo("pve2", metadataOf(pve1, "pve2", Date.now() - 180_000)), nodeRefused(/older than 120 s/));
  await assert.rejects(rawInfo("pve2", metadataOf(pve1, "pve3")), nodeRefused(/meant for node pve3/));
  const once = metadataOf(pve1, "pve2");
  await rawInfo("pve2", once);
  await assert.rejects(rawInfo("pve2", once), nodeRefused(/already used/));

  // A certificate for pve1 from another CA, with its own key.
  const other = join(dir, "other-ca");
  await mkdir(other, { recursive: true });
  await makeTestCa(join(other, "ca.key"), join(other, "ca.pem"));
  const foreign = await issueNodeCertificate({ dir: other, node: "pve1", ip: net.nodes[0]!.ip, caKey: join(other, "ca.key"), caCert: join(other, "ca.pem") });
  const foreignKey = (await import("node:crypto")).createPrivateKey(await readFile(foreign.key, "utf8"));
  await assert.rejects(
    rawInfo("pve2", {
      [NODE_CERT_KEY]: encodeCertificate(await readFile(foreign.cert, "utf8")),
      [NODE_ASSERTION_KEY]: signNodeAssertion({ node: "pve1", audience: "pve2", key: foreignKey, now: Date.now() }),
    }),
    nodeRefused(/not signed by the cluster CA/),
  );

  // pve3 leaves the cluster: within the member list's re-read (2 s) its credential stops working.
  await cluster.setMembers(members().filter((m) => m.name !== "pve3"));
  try {
    await waitFor("pve2 to refuse pve3", async () => rawInfo("pve2", metadataOf(pve3, "pve2")).then(() => false, (err: unknown) => nodeRefused(/not in the cluster's member list/)(err)), 6_000);
  } finally {
    await cluster.setMembers(members());
  }
  await waitFor("pve2 to take pve3 back", async () => rawInfo("pve2", metadataOf(pve3, "pve2")).then(() => true, () => false), 6_000);
});

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** lullctl as root on node `index`: in its namespace, over its socket, its /etc/pve. */
function lullctlOn(index: number, args: string[], timeoutMs = 20_000): Promise<Run> {
  const agent = agents[index]!;
  const argv = ["netns", "exec", net.nodes[index]!.ns, process.execPath, ENTRY_POINTS.lullctl, "--socket", agent.socketPath, ...args];
  return new Promise((resolve) => {
    execFile("ip", argv, { timeout: timeoutMs, env: { ...process.env, LULL_CLUSTER_ROOT: cluster.rootOf(NAMES[index]!) } }, (err, stdout, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? null) : 0, stdout, stderr }),
    );
  });
}

test("lullctl --cluster jobs merges every node; a node cut off is shown unreachable and the exit code is 4", async () => {
  await Promise.all(agents.map((a, i) => a.client().backup(guestOf(i), 30_000)));
  const [all, text] = await Promise.all([lullctlOn(0, ["--cluster", "--json", "jobs"]), lullctlOn(0, ["--cluster", "jobs"])]);
  assert.equal(all.code, 0, all.stderr);
  const doc = JSON.parse(all.stdout) as { nodes: { node: string; answered: boolean }[]; jobs: { node: string; guestId: string }[] };
  assert.deepEqual(doc.nodes, NAMES.map((node) => ({ node, answered: true })));
  for (const [i, node] of NAMES.entries()) assert.ok(doc.jobs.some((j) => j.node === node && j.guestId === guestOf(i)), `a job of ${node}`);

  assert.equal(text.code, 0, text.stderr);
  assert.match(text.stdout.split("\n")[0] ?? "", /^NODE\s+JOB\s+GUEST/);
  for (const node of NAMES) assert.match(text.stdout, new RegExp(`^${node}\\s+j-`, "m"));

  net.setLink(2, false);
  try {
    const [cut, backups] = await Promise.all([
      lullctlOn(0, ["--cluster", "--node-timeout", "1500", "jobs"]),
      lullctlOn(0, ["--cluster", "--json", "--node-timeout", "1500", "backups"]),
    ]);
    assert.equal(cut.code, 4, `${cut.stdout}\n${cut.stderr}`);
    assert.match(cut.stdout, /^pve3 {2}unreachable: /m);
    assert.match(cut.stdout, /^pve2\s+j-/m, "the nodes that answer are still listed");
    assert.equal(backups.code, 4);
    const b = JSON.parse(backups.stdout) as { nodes: { node: string; answered: boolean }[]; backups: { node: string }[] };
    assert.deepEqual(b.nodes.map((n) => [n.node, n.answered]), [["pve1", true], ["pve2", true], ["pve3", false]]);
    assert.ok(b.backups.some((p) => p.node === "pve2"));
  } finally {
    net.setLink(2, true);
  }
  const [schedules, replay] = await Promise.all([lullctlOn(0, ["--cluster", "schedules"]), lullctlOn(0, ["--cluster", "--json", "events"])]);
  assert.equal(schedules.code, 0, schedules.stderr);
  assert.match(schedules.stdout, /^node pve3:/m);
  assert.equal(replay.code, 0, replay.stderr);
  const replayed = replay.stdout.trim().split("\n").map((l) => JSON.parse(l) as { node: string; phase: string });
  for (const node of NAMES) assert.ok(replayed.some((e) => e.node === node && e.phase === "done"), `${node}'s persisted events, up to its last`);
});

test("lullctl events --follow --cluster follows every node and resumes each after its own sequence when it comes back", async () => {
  const follower = startProcess({
    name: "lullctl-events",
    command: "ip",
    args: ["netns", "exec", net.nodes[0]!.ns, process.execPath, ENTRY_POINTS.lullctl, "--socket", agents[0]!.socketPath, "--json", "--cluster", "events", "--follow"],
    env: { ...process.env, LULL_CLUSTER_ROOT: cluster.rootOf("pve1") },
  });
  try {
    for (const node of NAMES) await follower.waitForLog((l) => l.node === node && typeof l.seq === "number", 15_000);
    const before = follower.mark();
    await agents[2]!.kill9();
    await follower.waitForLog((l) => l.node === "pve3" && l.unreachable !== undefined, 10_000, before);
    await agents[2]!.restart();
    const job3 = await agents[2]!.client().backup(guestOf(2), 30_000);
    const job2 = await agents[1]!.client().backup(guestOf(1), 30_000);
    await follower.waitForLog((l) => l.node === "pve3" && l.jobId === job3.id && l.phase === "done", 20_000, before);
    await follower.waitForLog((l) => l.node === "pve2" && l.jobId === job2.id && l.phase === "done", 20_000, before);
    const events = follower.logs.filter((l) => typeof l.seq === "number") as unknown as { node: string; seq: number }[];
    for (const node of NAMES) {
      const seqs = events.filter((e) => e.node === node).map((e) => e.seq);
      assert.deepEqual(seqs, [...seqs].sort((a, b) => a - b), `${node}'s events in order`);
      assert.equal(new Set(seqs).size, seqs.length, `${node}'s events once each`);
    }
    const pve3 = events.filter((e) => e.node === "pve3").map((e) => e.seq);
    const persisted = (await agents[2]!.client().listJobs()).length;
    assert.ok(persisted >= 2 && pve3.length > 0);
    // Ctrl-C ends the follower: every node's stream is closed, nothing keeps lullctl running.
    process.kill(follower.pid, "SIGINT");
    assert.equal((await follower.waitForExit(5_000)).code, 130);
  } finally {
    if (!follower.exitStatus) await follower.stop(5_000);
  }
});
