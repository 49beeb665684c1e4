// A consistency group across nodes with real processes: two agents, each in its own network
// namespace, the test CA and each node's /etc/pve view as in node-trust.test.ts; guest 101 on
// pve1 and guest 201 on pve2, one demo-app stack each with its real lull-controller; group `shop`
// configured on pve1 (101 here, 201 on pve2). pve1 coordinates: one barrier over both nodes, one
// snapshot point (no stack runs again before the last copy exists; each archive restores with
// nothing written after the group's first snapshot), the skew recorded. Then pve1 is killed (-9) while pve2's member waits at the
// barrier: pve2's member stops with LULL_E_GROUP_COORDINATOR_LOST and both stacks run again by
// their controllers' deadlines; the restarted pve1 settles its run as failed, naming the members.
// The group is defined on both nodes, so either coordinates a run, under the group's pmxcfs lease
// (one run at a time; the other node is refused). Also: cancels before and after the point reach
// the other node's member (it ends cancelled), pve2's network cut before the point, a kill -9 of
// pve1 after the point, a cut after the point that is only a blip (the coordinator reads the
// member's job again), and a kill -9 of the member's node at the barrier.
import assert from "node:assert/strict";
import { mkdir, readdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { execa } from "execa";
import { Phase, StackState } from "@lull/proto";
import { isTerminal } from "@lull/shared";
import { TestCluster } from "@lull/shared/testing";
import {
  ENTRY_POINTS,
  appCtl,
  appStatus,
  countedAppDriver,
  makeTempDir,
  readLedger,
  removeDir,
  startAgent,
  startController,
  waitFor,
  writeSeedData,
  type AgentProcess,
  type ControllerProcess,
  type GroupJson,
  type LedgerEntry,
} from "../support/index.js";
import { requireAvailable } from "../support/require.js";
import { installSlowCommand } from "../support/slow-command.js";
import { checkRestoredRecords, restoreArchive } from "../demo/restore-check.js";
import { readRecords, recordsFile } from "../demo/records.js";
import { ClusterNet, netnsUnavailable } from "./netns.js";

const NAMES = ["pve1", "pve2"];
const GUESTS = ["101", "201"];
/** The controllers give up a held stack after this long (the bound on every stack's downtime). */
const RESUME_DEADLINE_MS = 15_000;

interface Stack {
  guestId: string;
  dataDir: string;
  ledger: string;
  controller?: ControllerProcess;
}

let dir: string;
let net: ClusterNet;
let cluster: TestCluster;
const agents: AgentProcess[] = [];
const stacks: Stack[] = [];


function lullctl(index: number, args: string[], timeoutMs = 60_000) {
  return execa(process.execPath, [ENTRY_POINTS.lullctl, "--socket", agents[index]!.socketPath, ...args], { reject: false, timeout: timeoutMs });
}

async function startStackController(stack: Stack, index: number, stopDelayMs = 0): Promise<void> {
  const cdir = join(dir, "controllers", stack.guestId);
  await mkdir(cdir, { recursive: true });
  stack.controller = await startController({
    dir: cdir,
    guestId: stack.guestId,
    stack: "app",
    agent: agents[index]!,
    resumeDeadlineMs: RESUME_DEADLINE_MS,
    pollIntervalMs: 300,
    leaseTtlMs: 15_000,
    driver: countedAppDriver({ ledger: stack.ledger, dataDir: stack.dataDir, stopDelayMs }),
  });
}

before(async () => {
  requireAvailable("network namespaces", netnsUnavailable());
  dir = await makeTempDir("lull-xgroup-");
  net = ClusterNet.create(2);
  cluster = await TestCluster.create(join(dir, "cluster"), NAMES.map((name, i) => ({ name, ip: net.nodes[i]!.ip })));
  await Promise.all(
    NAMES.map(async (name, i) => {
      const guestId = GUESTS[i]!;
      const dataDir = join(dir, "guests", guestId, "app");
      await mkdir(dataDir, { recursive: true });
      await mkdir(join(dir, "ledgers"), { recursive: true });
      stacks[i] = { guestId, dataDir, ledger: join(dir, "ledgers", `${guestId}.jsonl`) };
      agents[i] = await startAgent({
        dir: join(dir, name),
        netns: net.nodes[i]!.ns,
        // Reachable from the test's namespace, where the controllers run.
        listen: `${net.nodes[i]!.ip}:0`,
        guests: [{ id: guestId, driver: "dir", snapshot: "copy", volumes: [{ name: "app", path: dataDir }] }],
        config: {
          node: name,
          cluster: { enabled: true },
          // A node that finds the group's lease held gives up after 2 s (the lease test below).
          schedules: { clusterRoot: cluster.rootOf(name), lease: { acquireTimeoutMs: 2_000 } },
          quiesce: { timeoutMs: 10_000, policy: "fail" },
          shutdownGraceMs: 3_000,
          // The group is defined on both nodes (each lists its own guest, and the other's under remote): either may coordinate.
          groups: [{ id: "shop", guests: [guestId], remote: [{ guest: GUESTS[1 - i]!, node: NAMES[1 - i]! }], quiesceTimeoutMs: 10_000 }],
        },
        readyTimeoutMs: 30_000,
      });
    }),
  );
  for (const s of stacks) await appCtl("start", s.dataDir);
  for (const [i, s] of stacks.entries()) await startStackController(s, i);
});

after(async () => {
  for (const s of stacks) await s?.controller?.stop().catch(() => undefined);
  await Promise.all(agents.map((a) => a?.stop().catch(() => undefined)));
  for (const s of stacks) if (s) await appCtl("stop", s.dataDir).catch(() => undefined);
  net?.destroy();
  if (dir) await removeDir(dir);
});

/** The run as the coordinator's lullctl shows it (`lullctl --json group <run>`; pve1 unless said). */
async function shownRun(runId: string, timeoutMs = 10_000, node = 0): Promise<GroupJson> {
  const shown = await lullctl(node, ["--json", "group", runId], timeoutMs);
  const doc = JSON.parse(shown.stdout) as { group?: GroupJson } & GroupJson;
  return doc.group ?? doc;
}

/** Waits for pve1's run to end; returns it as shown. */
function runEnded(runId: string, timeoutMs: number): Promise<GroupJson> {
  return waitFor(
    "pve1's run to end",
    async () => {
      const group = await shownRun(runId);
      return ["done", "failed", "cancelled"].includes(group.phase) ? group : undefined;
    },
    timeoutMs,
  );
}

/** Cancels the run through pve1's lullctl and waits for it to end; it must end cancelled. */
async function cancelRun(runId: string, reason: string): Promise<GroupJson> {
  const c = await lullctl(0, ["--json", "cancel", "--group", runId, "--reason", reason], 30_000);
  assert.equal(c.exitCode, 0, c.stderr);
  const run = await runEnded(runId, 20_000);
  assert.equal(run.phase, "cancelled", JSON.stringify(run.error));
  return run;
}

/**
 * What pmxcfs does 120 s after a node stopped renewing a lock (the killed coordinator's group
 * lease): the lock is freed. The test's shared directory has no pmxcfs, so the test frees it.
 */
async function freeKilledNodesLock(): Promise<void> {
  await rm(join(cluster.pveDir, "priv", "lock", "lull-group-shop"), { recursive: true, force: true });
}

/** pve2's member of run `runId` has every stack acknowledged (its own barrier ended; it waits for pve1's word). */
async function memberAcknowledged(runId: string): Promise<boolean> {
  const job = (await agents[1]!.client().listJobs("201")).find((j) => j.groupRunId === runId);
  return job !== undefined && job.stacks.length > 0 && job.stacks.every((s) => s.state === StackState.STACK_STATE_QUIESCED);
}

/** Starts a run of group shop on pve1 (not waiting for it); returns its id. */
async function startShopRun(): Promise<string> {
  const r = await lullctl(0, ["--json", "backup", "--group", "shop"]);
  assert.equal(r.exitCode, 0, r.stderr);
  return (JSON.parse(r.stdout) as { group: GroupJson }).group.id;
}

/** pve2's member job of run `runId` once it is in `phase`. */
function memberOnPve2(runId: string, phase: Phase, what: string, timeoutMs = 30_000) {
  return waitFor(what, async () => (await agents[1]!.client().listJobs("201")).find((j) => j.groupRunId === runId && j.phase === phase), timeoutMs);
}

/** pve2's agent runs again with `env` (a slow command's PATH), and 201's controller registers with it again. */
async function restartPve2With(env: NodeJS.ProcessEnv): Promise<void> {
  await stacks[1]!.controller!.stop();
  await agents[1]!.restart({ env });
  await startStackController(stacks[1]!, 1);
}

/** Starts a run and waits until pve1 knows that pve2's member archives (past the snapshot point). */
async function runArchivingOnPve2(): Promise<{ runId: string; memberJobId: string }> {
  const runId = await startShopRun();
  const archiving = await memberOnPve2(runId, Phase.PHASE_ARCHIVING, "pve2's member to archive (past the snapshot point)");
  // …and until the coordinator has that report (its stream from pve2 carries each change).
  await waitFor("pve1 to know pve2's member archives", async () => (await shownRun(runId)).members.find((m) => m.guestId === "201@pve2" && m.phase === "archiving"), 30_000);
  return { runId, memberJobId: archiving.id };
}

/**
 * Starts a run in which 201's member waits at the barrier: 101's stack takes 6 s to stop (its
 * controller registered again with pve1), 201's acknowledges at once. Returns the run and its start.
 */
async function runWaitingAtBarrier(): Promise<{ runId: string; started: number }> {
  await stacks[0]!.controller!.stop();
  await startStackController(stacks[0]!, 0, 6_000);
  const started = Date.now();
  const runId = await startShopRun();
  await waitFor("201's member to end its own barrier (its stack acknowledged)", () => memberAcknowledged(runId), 15_000);
  return { runId, started };
}


const ms = (iso: string | null | undefined) => (iso ? Date.parse(iso) : NaN);
const last = (entries: LedgerEntry[], verb: "stop" | "start", event: "begin" | "end", since = 0) => entries.filter((e) => e.verb === verb && e.event === event && e.at >= since).at(-1);

test("a group over guests of two nodes: one barrier, no stack resumed before the last snapshot, the skew recorded", async () => {
  const started = Date.now();
  const r = await lullctl(0, ["--json", "backup", "--group", "shop", "--wait"]);
  assert.equal(r.exitCode, 0, `${r.stderr}\n${r.stdout}`);
  const group = (JSON.parse(r.stdout) as { group: GroupJson }).group;
  assert.equal(group.phase, "done", JSON.stringify(group.error));
  assert.deepEqual(group.guestIds, ["101", "201@pve2"]);
  assert.deepEqual(group.members.map((m) => [m.guestId, m.phase]), [["101", "done"], ["201@pve2", "done"]]);

  const snapshots = group.members.map((m) => ms(m.snapshotAt));
  const first = Math.min(...snapshots);
  const lastSnapshot = Math.max(...snapshots);
  assert.equal(ms(group.snapshotAt), first, "the run's snapshot_at is the earliest member's");
  for (const s of stacks) {
    const entries = readLedger(s.ledger);
    const stopped = last(entries, "stop", "end", started);
    const resumed = last(entries, "start", "begin", started);
    assert.ok(stopped && stopped.at <= first, `${s.guestId}'s stack was stopped before the first snapshot`);
    assert.ok(resumed && resumed.at >= lastSnapshot, `${s.guestId}'s stack started ${lastSnapshot - (resumed?.at ?? 0)} ms before the last snapshot existed`);
    assert.equal(await appStatus(s.dataDir), "running");
  }

  // Write isolation across the members: each archive (one on each node) restores with every record
  // its app acknowledged before the group's first snapshot and none written after it.
  for (const [i, m] of group.members.entries()) {
    const restoreDir = await makeTempDir("lull-xgroup-restore-");
    try {
      await restoreArchive(m.archive!.path, restoreDir);
      const restored = readRecords(recordsFile(join(restoreDir, "app")));
      const live = readRecords(recordsFile(stacks[i]!.dataDir));
      assert.ok(restored.length > 0, `${m.guestId}'s archive holds the app's records`);
      for (const check of checkRestoredRecords(restored, live, new Date(first))) assert.ok(check.ok, `${m.guestId}: ${check.name}: ${check.detail}`);
    } finally {
      await removeDir(restoreDir);
    }
  }

  // pve2 ran the member job itself, as a member of pve1's run.
  const remote = (await agents[1]!.client().listJobs("201")).find((j) => j.groupRunId === group.id);
  assert.ok(remote, "pve2 has the member job of pve1's run");
  assert.equal(group.members[1]!.id, remote.id);

  const events = await lullctl(0, ["--json", "events", "--group", group.id], 20_000);
  assert.equal(events.exitCode, 0, events.stderr);
  const skew = events.stdout.split("\n").filter(Boolean).map((l) => JSON.parse(l) as { message?: string }).find((e) => /members' snapshots span/.test(e.message ?? ""));
  assert.ok(skew, "the snapshot point's event records the skew");
  assert.match(skew.message!, new RegExp(`span ${lastSnapshot - first} ms`));
});

test("one coordinator per group: while pve1 holds the group's pmxcfs lease pve2 is refused the group; once it ended pve2 coordinates it", async () => {
  const { runId } = await runWaitingAtBarrier();
  const refused = await lullctl(1, ["--json", "backup", "--group", "shop"]);
  assert.notEqual(refused.exitCode, 0, refused.stdout);
  assert.match(refused.stderr, /LULL_E_GROUP_LEASE_UNAVAILABLE/);
  assert.match(refused.stderr, /another node coordinates a run of group shop now/);
  const onPve2 = await agents[1]!.client().listJobs("201");
  assert.equal(onPve2.filter((j) => !isTerminal(j.phase)).length, 1, "201 has one job: its member of pve1's run");
  assert.equal(onPve2.find((j) => !isTerminal(j.phase))?.groupRunId, runId);
  const first = await runEnded(runId, 60_000);
  assert.equal(first.phase, "done", JSON.stringify(first.error));
  await waitFor("pve1 to give the group's lease back at the run's end", async () => !(await readdir(join(cluster.pveDir, "priv", "lock"))).includes("lull-group-shop"), 5_000);

  // pve2 takes the lease and coordinates: pve1's guest is now the member on another node.
  const r = await lullctl(1, ["--json", "backup", "--group", "shop", "--wait"], 90_000);
  assert.equal(r.exitCode, 0, `${r.stderr}\n${r.stdout}`);
  const second = (JSON.parse(r.stdout) as { group: GroupJson }).group;
  assert.equal(second.phase, "done", JSON.stringify(second.error));
  assert.deepEqual(second.guestIds, ["101@pve1", "201"]);
  assert.deepEqual(second.members.map((m) => [m.guestId, m.phase]).sort(), [["101@pve1", "done"], ["201", "done"]]);
  const onPve1 = (await agents[0]!.client().listJobs("101")).find((j) => j.groupRunId === second.id);
  assert.ok(onPve1 && onPve1.phase === Phase.PHASE_DONE, "pve1 ran its member of pve2's run");
});

test("cancelling a run before its snapshot point cancels the member on the other node too: both end cancelled, every stack runs again", async () => {
  const { runId, started } = await runWaitingAtBarrier();
  const run = await cancelRun(runId, "operator test");
  assert.deepEqual(run.members.map((m) => [m.guestId, m.phase]), [["101", "cancelled"], ["201@pve2", "cancelled"]]);
  const member = (await agents[1]!.client().listJobs("201")).find((j) => j.groupRunId === runId);
  assert.equal(member?.phase, Phase.PHASE_CANCELLED, `${member?.errorCode}: ${member?.errorMessage}`);
  assert.match(member?.errorMessage ?? "", /operator test/);
  assert.equal(member?.snapshotAt, undefined);
  for (const s of stacks) {
    await waitFor(`${s.guestId}'s stack to start again`, () => last(readLedger(s.ledger), "start", "end", started), RESUME_DEADLINE_MS);
    assert.equal(await appStatus(s.dataDir), "running");
  }
});

test("kill -9 of the coordinator while the other node's member waits at the barrier: its stacks run again, its job says why, the run is settled honestly", async () => {
  // 101's stack takes 6 s to stop, so 201's member ends its barrier first and waits for pve1's word.
  const { runId, started } = await runWaitingAtBarrier();
  assert.equal(last(readLedger(stacks[0]!.ledger), "stop", "end", started), undefined, "101's stack is still stopping: the group barrier has not passed");
  const killedAt = Date.now();
  await agents[0]!.kill9();
  await freeKilledNodesLock();

  const member = await waitFor(
    "pve2's member job to end",
    async () => (await agents[1]!.client().listJobs("201")).find((j) => j.groupRunId === runId && isTerminal(j.phase)),
    RESUME_DEADLINE_MS,
  );
  assert.equal(member.errorCode, "LULL_E_GROUP_COORDINATOR_LOST", member.errorMessage);
  assert.match(member.errorMessage, /the coordinating node pve1 went away before every member's snapshot existed/);
  assert.equal(member.snapshotAt, undefined, "no snapshot of 201 was committed");
  // Every stack runs again: 201's when its member ended, 101's by its controller's deadline (its agent is gone).
  for (const s of stacks) {
    const resumed = await waitFor(`${s.guestId}'s stack to start again`, () => last(readLedger(s.ledger), "start", "end", started), RESUME_DEADLINE_MS + 10_000);
    assert.ok(resumed.at - killedAt <= RESUME_DEADLINE_MS + 5_000, `${s.guestId}'s stack ran again ${resumed.at - killedAt} ms after the kill`);
    assert.equal(await appStatus(s.dataDir), "running");
  }

  await agents[0]!.restart();
  const settled = await lullctl(0, ["--json", "group", runId], 20_000);
  assert.equal(settled.exitCode === 0 || settled.exitCode === 1, true, settled.stderr);
  const group = (JSON.parse(settled.stdout) as { group?: GroupJson } & GroupJson).group ?? (JSON.parse(settled.stdout) as GroupJson);
  assert.equal(group.phase, "failed");
  assert.equal(group.error?.code, "LULL_E_AGENT_RESTARTED");
  assert.deepEqual([...(group.error?.failedGuests ?? [])].sort(), ["101", "201@pve2"]);
});

test("pve2's network cut while its member waits at the barrier: every stack runs again by its deadline, both sides say what happened", async () => {
  const { runId, started } = await runWaitingAtBarrier();
  const cutAt = Date.now();
  net.setLink(1, false);
  try {
    // pve2 hears nothing more: its member gives up by its own hold deadline (quiesce timeout + 5 s from joining).
    const member = await waitFor(
      "pve2's member job to end",
      async () => (await agents[1]!.client().listJobs("201")).find((j) => j.groupRunId === runId && isTerminal(j.phase)),
      25_000,
    );
    assert.equal(member.errorCode, "LULL_E_GROUP_COORDINATOR_LOST", member.errorMessage);
    assert.equal(member.snapshotAt, undefined);
    // The coordinator loses the member (its stream's keepalive) and fails the run, naming it.
    const run = await runEnded(runId, 40_000);
    assert.equal(run.phase, "failed");
    // The member is recorded lost, named with its node. The run's first cause is that loss when the
    // coordinator's word to it failed (5 s) or the stream's keepalive noticed (15 s) before 101's
    // controller gave up on its held stack (15 s): on a loaded machine the barrier may pass before the
    // cut, and then 101's stack running again can come first — both end the run failed, honestly.
    const lost = run.members.find((m) => m.guestId === "201@pve2");
    assert.equal(lost?.error?.code, "LULL_E_GROUP_MEMBER_LOST", JSON.stringify(lost?.error));
    assert.match(lost?.error?.message ?? "", /node pve2 stopped answering before the snapshot point/);
    assert.ok(["LULL_E_GROUP_MEMBER_LOST", "LULL_E_RESUMED_BEFORE_SNAPSHOT"].includes(run.error?.code ?? ""), run.error?.message ?? undefined);
    assert.deepEqual([...(run.error?.failedGuests ?? [])].sort(), ["101", "201@pve2"]);
    // Every stack runs again: 101's when its member was stopped, 201's by its controller's deadline (it cannot reach pve2 either).
    for (const s of stacks) {
      const resumed = await waitFor(`${s.guestId}'s stack to start again`, () => last(readLedger(s.ledger), "start", "end", started), RESUME_DEADLINE_MS + 20_000);
      assert.ok(resumed.at - cutAt <= RESUME_DEADLINE_MS + 15_000, `${s.guestId}'s stack ran again ${resumed.at - cutAt} ms after the cut`);
      assert.equal(await appStatus(s.dataDir), "running");
    }
  } finally {
    net.setLink(1, true);
  }
});

test("kill -9 of the coordinator after the snapshot point: the other node's member archives on and keeps its point; the restarted coordinator follows it there and the run ends done", async () => {
  // pve2's member must still be archiving when pve1 dies, however fast this machine is: pve2's
  // agent runs again with a zstd that starts 8 s late (the shim stays for the two tests after this
  // one, which need the member archiving too), and its controller registers with it again.
  await writeSeedData({ dir: join(stacks[1]!.dataDir, "attachments"), totalBytes: 32 * 1024 ** 2 });
  const slowZstd = await installSlowCommand({ binDir: join(dir, "pve2-bin"), command: "zstd", delayMs: 8_000 });
  await restartPve2With(slowZstd.env());
  await stacks[0]!.controller!.stop();
  await startStackController(stacks[0]!, 0);
  const started = Date.now();
  const { runId, memberJobId } = await runArchivingOnPve2();
  // 101's small archive is done by then (its member is not interrupted by the kill).
  await waitFor("101's member to be done", async () => (await shownRun(runId)).members.find((m) => m.guestId === "101" && m.phase === "done"), 30_000);
  await agents[0]!.kill9();
  await freeKilledNodesLock();

  const member = await waitFor(
    "pve2's member job to end",
    async () => (await agents[1]!.client().listJobs("201")).find((j) => j.id === memberJobId && isTerminal(j.phase)),
    60_000,
  );
  assert.equal(member.phase, Phase.PHASE_DONE, `${member.errorCode}: ${member.errorMessage}`);
  assert.ok(member.snapshotAt !== undefined && member.archivePath !== "", "the member's point exists on pve2");
  const resumed = last(readLedger(stacks[1]!.ledger), "start", "end", started);
  assert.ok(resumed, "201's stack ran again");

  // The restarted pve1 does not settle the run as unknown: it asks pve2 for its member's job and ends the run from what it finds.
  await agents[0]!.restart();
  const group = await runEnded(runId, 30_000);
  assert.equal(group.phase, "done", JSON.stringify(group.error));
  assert.deepEqual(group.members.map((m) => [m.guestId, m.phase]), [["101", "done"], ["201@pve2", "done"]]);
  assert.ok(group.members[1]!.archive?.path, "the member's point as its node reports it");
  assert.ok(agents[0]!.proc.logsWithMsg("interrupted group run past its point: following its members on other nodes").length > 0);
});

test("after the snapshot point a cut of the member's node is a blip, not a loss: the coordinator reads the member's job there again and the run ends done", async () => {
  // pve2 still has the zstd that starts 8 s late (the test before): its member archives through the cut.
  const mark = agents[0]!.proc.mark();
  const { runId } = await runArchivingOnPve2();
  net.setLink(1, false);
  try {
    // The stream's keepalive (10 s + 5 s) breaks it while the link is down; the coordinator then asks GetJob.
    await agents[0]!.proc.waitForLog((l) => l.msg === "the member's stream broke after the snapshot point; following its job on its node", 30_000, mark);
  } finally {
    net.setLink(1, true);
  }
  const run = await runEnded(runId, 90_000);
  assert.equal(run.phase, "done", JSON.stringify(run.error));
  assert.deepEqual(run.members.map((m) => [m.guestId, m.phase]), [["101", "done"], ["201@pve2", "done"]]);
  assert.ok(run.members[1]!.archive?.path, "the member's point, as its node reported it");
});

test("cancelling a run after its snapshot point cancels the member still archiving on the other node: its partial archive goes, the run ends cancelled", async () => {
  const { runId, memberJobId } = await runArchivingOnPve2();
  const run = await cancelRun(runId, "operator test after the point");
  const byGuest = Object.fromEntries(run.members.map((m) => [m.guestId, m.phase]));
  assert.equal(byGuest["201@pve2"], "cancelled");
  const member = await agents[1]!.client().getJob("201", memberJobId);
  assert.equal(member.phase, Phase.PHASE_CANCELLED, `${member.errorCode}: ${member.errorMessage}`);
  assert.equal(member.failedIn, Phase.PHASE_ARCHIVING);
  assert.deepEqual((await readdir(agents[1]!.archiveDir)).filter((n) => n.includes(memberJobId)), [], "no partial archive of the member is left on pve2");
});

test("kill -9 of the coordinator between the barrier and the point (pve2's member still copying): the member stops and releases its copy, every stack runs again, the restarted coordinator settles the run", async () => {
  // pve2's copy of its volume takes 8 s (a cp that starts late): the run passes its barrier, then pve1 dies while pve2 copies.
  const slowCp = await installSlowCommand({ binDir: join(dir, "pve2-slow-cp"), command: "cp", delayMs: 8_000, whenArgsStartWith: ["-a", "--reflink=auto"] });
  await restartPve2With(slowCp.env());
  const started = Date.now();
  const runId = await startShopRun();
  const copying = await memberOnPve2(runId, Phase.PHASE_SNAPSHOTTING, "pve2's member to take its copy (the group barrier passed)");
  assert.equal((await shownRun(runId)).phase, "snapshotting", "the coordinator committed the barrier");
  const killedAt = Date.now();
  await agents[0]!.kill9();
  await freeKilledNodesLock();

  const member = await waitFor(
    "pve2's member job to end",
    async () => (await agents[1]!.client().listJobs("201")).find((j) => j.id === copying.id && isTerminal(j.phase)),
    30_000,
  );
  assert.equal(member.errorCode, "LULL_E_GROUP_COORDINATOR_LOST", member.errorMessage);
  assert.equal(member.snapshotAt, undefined, "201 never committed snapshotted");
  assert.equal(member.archivePath, "");
  const staging = String(agents[1]!.config.stagingDir);
  await waitFor("pve2's copy to be released", async () => (await readdir(staging)).every((n) => !n.includes(copying.id)), 15_000);
  for (const s of stacks) {
    const resumed = await waitFor(`${s.guestId}'s stack to start again`, () => last(readLedger(s.ledger), "start", "end", started), RESUME_DEADLINE_MS + 10_000);
    assert.ok(resumed.at - killedAt <= RESUME_DEADLINE_MS + 5_000, `${s.guestId}'s stack ran again ${resumed.at - killedAt} ms after the kill`);
    assert.equal(await appStatus(s.dataDir), "running");
  }

  await agents[0]!.restart();
  const group = await shownRun(runId, 20_000);
  assert.equal(group.phase, "failed");
  assert.equal(group.error?.code, "LULL_E_AGENT_RESTARTED", group.error?.message ?? undefined);
  assert.deepEqual([...(group.error?.failedGuests ?? [])].sort(), ["101", "201@pve2"]);
});

test("kill -9 of the member's node while its member waits at the barrier: the coordinator fails the run naming it lost, every stack runs again", async () => {
  const { runId, started } = await runWaitingAtBarrier();
  const killedAt = Date.now();
  await agents[1]!.kill9();
  try {
    const run = await runEnded(runId, 30_000);
    assert.equal(run.phase, "failed");
    assert.equal(run.error?.code, "LULL_E_GROUP_MEMBER_LOST", run.error?.message ?? undefined);
    assert.match(run.error?.message ?? "", /201@pve2 failed in quiescing \(LULL_E_GROUP_MEMBER_LOST: node pve2 stopped answering before the snapshot point/);
    assert.deepEqual([...(run.error?.failedGuests ?? [])].sort(), ["101", "201@pve2"]);
    // 101's stack when its member was stopped; 201's by its controller's deadline (its agent is gone).
    for (const s of stacks) {
      const resumed = await waitFor(`${s.guestId}'s stack to start again`, () => last(readLedger(s.ledger), "start", "end", started), RESUME_DEADLINE_MS + 15_000);
      assert.ok(resumed.at - killedAt <= RESUME_DEADLINE_MS + 10_000, `${s.guestId}'s stack ran again ${resumed.at - killedAt} ms after the kill`);
    }
  } finally {
    await agents[1]!.restart();
  }
  const member = (await agents[1]!.client().listJobs("201")).find((j) => j.groupRunId === runId);
  assert.ok(member && isTerminal(member.phase) && member.snapshotAt === undefined, "the restarted pve2 settled its member without a point");
});
