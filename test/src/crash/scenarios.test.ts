// Named scenarios of the crash matrix, with real daemons and stacks:
//   - the event stream cut and restored (agent stopped and restarted between events, and killed
//     mid-job): watchers resume from their last sequence and miss nothing and get nothing twice;
//   - the disk fills up while archiving: the job fails LULL_E_NO_SPACE, its snapshot and partial
//     archive are removed at once, and the app was already running again;
//   - the controller restarted while its job is still quiescing: it re-attaches and does not stop
//     its stack a second time.
// (The agent unreachable for longer than the resume deadline is in agent-crash.test.ts.)
import assert from "node:assert/strict";
import { statfs } from "node:fs/promises";
import { test } from "node:test";
import { Phase } from "@lull/proto";
import { phaseName } from "@lull/shared";
import {
  EventFollower,
  Site,
  awaitConvergence,
  countInvocations,
  loopBtrfsUnavailable,
  readAllEvents,
  type GuestStorage,
  type JobRef,
  type LogLine, requireAvailable } from "../support/index.js";

const byJob = (msg: string, jobId: string) => (l: LogLine) => l.msg === msg && l.jobId === jobId;

async function startJob(site: Site, guestId: string): Promise<string> {
  const { job } = await site.agent.client().startBackup(guestId);
  if (!job) throw new Error("StartBackup returned no job");
  return job.id;
}

test("event stream cut and restored: watchers resume from their last sequence, missing nothing and getting nothing twice", async () => {
  const site = await Site.start({ guests: [{ id: "g1", storage: "dir-copy", stacks: ["app"], seedBytes: 2 * 1024 ** 2 }] });
  const all = new EventFollower({ address: site.agent.socketAddress });
  const guest = new EventFollower({ address: site.agent.socketAddress, guestId: "g1" });
  const jobs: JobRef[] = [];
  try {
    const since = Date.now();
    const ctl = () => site.stack("g1").controller!.proc;
    const backupDone = async (jobId: string) => ctl().waitForLog(byJob("backup done", jobId), 30_000);

    jobs.push({ guestId: "g1", jobId: await startJob(site, "g1") });
    await backupDone(jobs[0]!.jobId);
    await site.agent.stop(); // a clean stop between two jobs
    const beforeRestart = ctl().mark();
    await site.restartAgent("pause-in:snapshotted");
    // The agent sends the stream's headers at once: the controller knows its stream is back
    // before any new event, and stops polling.
    await ctl().waitForLog((l) => l.msg === "event stream connected", 5_000, beforeRestart);
    const second = await startJob(site, "g1");
    jobs.push({ guestId: "g1", jobId: second });
    await site.agent.proc.waitForLog((l) => l.msg === "paused at failpoint" && l.jobId === second, 30_000);
    await site.agent.kill9(); // mid-job, between snapshotted and archiving
    await site.restartAgent("pause-in:quiescing");
    const third = await startJob(site, "g1");
    jobs.push({ guestId: "g1", jobId: third });
    await site.agent.proc.waitForLog((l) => l.msg === "paused at failpoint" && l.jobId === third, 30_000);
    await ctl().waitForLog(byJob("quiesce acknowledged", third), 20_000);
    await site.agent.kill9(); // while the stack is held stopped
    await site.restartAgent();
    for (const j of jobs.slice(1)) await backupDone(j.jobId);
    jobs.push({ guestId: "g1", jobId: await startJob(site, "g1") });
    await backupDone(jobs[3]!.jobId);

    const report = await awaitConvergence(site, { jobs, sinceMs: since, followers: [all, guest], timeoutMs: 20_000 });
    assert.deepEqual(report.problems, []);
    assert.deepEqual(report.jobs.map((j) => phaseName(j.phase)), ["done", "failed", "failed", "done"]);
    assert.deepEqual(report.jobs.map((j) => phaseName(j.failedIn)), ["unspecified", "snapshotted", "quiescing", "unspecified"]);

    const persisted = await readAllEvents(site.agent.socketAddress, 10_000);
    const last = persisted.at(-1)!.seq;
    await all.waitFor(`event #${last}`, (e) => e.seq === last, 10_000);
    assert.deepEqual(all.seqs(), persisted.map((e) => e.seq), "the follower of every guest got exactly the persisted events, in order");
    assert.deepEqual(guest.seqs(), persisted.filter((e) => e.guestId === "g1").map((e) => e.seq));
    assert.deepEqual(all.duplicates(), []);
    assert.ok(all.breaks >= 3 && guest.breaks >= 3, `the streams broke at each stop (${all.breaks}, ${guest.breaks})`);
    const reconnects = ctl().logsWithMsg("event stream connected").length;
    assert.ok(reconnects >= 4, `the controller's own stream reconnected after each restart (${reconnects} connects)`);
  } finally {
    await all.stop();
    await guest.stop();
    await site.teardown();
  }
});

async function diskFull(storage: GuestStorage): Promise<void> {
  const site = await Site.start({
    guests: [{ id: "g1", storage, stacks: ["app"], seedBytes: 32 * 1024 ** 2 }],
    archiveTmpfsBytes: 4 * 1024 ** 2, // the archive of 32 MiB of half-random data needs ~16 MiB
    // zstd starts 2.5 s late, so the disk fills up only once the app is surely up again.
    slowAgentCommands: [{ command: "zstd", delayMs: 2_500 }],
  });
  const follower = new EventFollower({ address: site.agent.socketAddress });
  try {
    const stack = site.stack("g1");
    const since = Date.now();
    const jobId = await startJob(site, "g1");
    const job = await site.agent.client().waitForEnd("g1", jobId, 60_000);
    assert.equal(job.phase, Phase.PHASE_FAILED);
    assert.equal(phaseName(job.failedIn), "archiving");
    assert.equal(job.errorCode, "LULL_E_NO_SPACE", job.errorMessage);
    assert.equal(job.archivePath, "");

    const resumed = await stack.controller!.proc.waitForLog(byJob("stack resumed", jobId), 10_000);
    assert.equal(resumed.cause, "snapshotted");
    assert.ok(Date.parse(String(resumed.time)) < job.finishedAt!.getTime(), "the app ran again before the archive failed");
    const done = await stack.controller!.proc.waitForLog(byJob("backup done", jobId), 10_000);
    assert.equal(done.errorCode, "LULL_E_NO_SPACE");

    assert.deepEqual(await site.leftovers(), [], "snapshot, staging and partial archive removed by the failed job itself");
    const fs = await statfs(site.archiveDir);
    assert.ok(fs.bfree * fs.bsize >= 3.5 * 1024 ** 2, "the space the partial archive took is free again");
    const report = await awaitConvergence(site, { jobs: [{ guestId: "g1", jobId }], sinceMs: since, followers: [follower], timeoutMs: 10_000 });
    assert.deepEqual(report.problems, []);
  } finally {
    await follower.stop();
    await site.teardown();
  }
}

test("disk full while archiving (dir copy, archives on a 4 MiB tmpfs): LULL_E_NO_SPACE, staging removed, app already up", () => diskFull("dir-copy"));

test("disk full while archiving (loop btrfs snapshot, archives on a 4 MiB tmpfs): LULL_E_NO_SPACE, snapshot removed, app already up", async (t) => {
  const why = await loopBtrfsUnavailable();
  requireAvailable("a loop-mounted btrfs (root, btrfs-progs)", why);
  await diskFull("btrfs");
});

test("controller kill -9 and restart while its job is still quiescing: it re-attaches and does not stop its stack twice", async () => {
  const site = await Site.start({
    // The slow stack's stop outlasts the restarted controller's start and recovery even on a loaded
    // machine (5 s was not always enough: the job was snapshotted before the new controller looked).
    guests: [{ id: "g1", storage: "dir-copy", stacks: ["app", { name: "slow", stopDelayMs: 15_000 }] }],
    agentConfig: { quiesce: { timeoutMs: 45_000, policy: "fail" } },
  });
  const follower = new EventFollower({ address: site.agent.socketAddress });
  try {
    const [app, slow] = [site.stack("g1", "app"), site.stack("g1", "slow")];
    const since = Date.now();
    const jobId = await startJob(site, "g1");
    await app.controller!.proc.waitForLog(byJob("quiesce acknowledged", jobId), 20_000);
    assert.equal((await site.agent.client().getJob("g1", jobId)).phase, Phase.PHASE_QUIESCING, "still quiescing: the slow stack has not stopped");
    await app.controller!.kill9();

    const restarted = await site.startController(app);
    const recovered = await restarted.proc.waitForLog((l) => l.msg === "recovered", 20_000);
    assert.equal(recovered.outcome, "holding", "re-attached to the job, holding the stack stopped");
    assert.equal(await app.status(), "stopped");
    const resumed = await restarted.proc.waitForLog(byJob("stack resumed", jobId), 30_000);
    assert.equal(resumed.cause, "snapshotted");
    await restarted.proc.waitForLog(byJob("backup done", jobId), 30_000);
    await slow.controller!.proc.waitForLog(byJob("backup done", jobId), 30_000);

    const report = await awaitConvergence(site, { jobs: [{ guestId: "g1", jobId }], sinceMs: since, followers: [follower], timeoutMs: 15_000 });
    assert.deepEqual(report.problems, []);
    assert.equal(report.jobs[0]!.phase, Phase.PHASE_DONE);
    assert.equal(countInvocations(app.ledgerEntries(), "stop", since), 1, "app stopped once, by the first controller only");
    assert.equal(countInvocations(app.ledgerEntries(), "start", since), 1);
    assert.equal(countInvocations(slow.ledgerEntries(), "stop", since), 1);
    assert.equal(restarted.proc.logs.filter((l) => l.msg === "stack stopped").length, 0, "the restarted controller stopped nothing");
  } finally {
    await follower.stop();
    await site.teardown();
  }
});
