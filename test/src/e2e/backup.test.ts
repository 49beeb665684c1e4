// End to end with real processes: lull-agent, lull-controller, the demo app as the stack (command
// driver), real tar/zstd, and real snapshots (a dir copy, or btrfs on a loop-mounted image).
// Proven with timestamps from the agent's phase events, the driver's stop/start ledger and the
// app's own records: the stack is down from the stop until `snapshotted` and no longer (it runs
// again well before archiving ends); with `snapshot: none` it stays down to the end. The archive
// restores and holds exactly the records written before the snapshot.
import assert from "node:assert/strict";
import { join } from "node:path";
import { test } from "node:test";
import { Phase, SnapshotMode, StackState, type Job } from "@lull/proto";
import { checkRestoredRecords, restoreArchive } from "../demo/restore-check.js";
import { readRecords, recordsFile } from "../demo/records.js";
import { EventFollower, awaitConvergence, loopBtrfsUnavailable, makeTempDir, removeDir, sleep, Site, type GuestStorage, requireAvailable } from "../support/index.js";
import { describeTimeline, readTimeline, type BackupTimeline } from "./timeline.js";

/**
 * 192 MiB of half-random data at zstd level 15: archiving takes seconds, the snapshot an instant.
 * (64 MiB archived in about 1.2 s here, which left the 1 s margin below to chance under load.)
 */
const SEED_BYTES = 192 * 1024 ** 2;
const ZSTD_LEVEL = 15;
/** The stack must run again at least this long before the archive is finished. */
const EARLY_MARGIN_MS = 1_000;

interface Outcome {
  site: Site;
  job: Job;
  timeline: BackupTimeline;
}

async function backupOnce(site: Site, follower: EventFollower): Promise<Outcome> {
  const stack = site.stack("g1");
  await sleep(300); // the app writes records before the backup
  const since = Date.now();
  const { job: started } = await site.agent.client().startBackup("g1");
  assert.ok(started);
  const ended = await site.agent.client().waitForEnd("g1", started.id, 120_000);
  assert.equal(ended.phase, Phase.PHASE_DONE, `job ${ended.id}: ${ended.errorCode} ${ended.errorMessage}`);
  await stack.controller!.proc.waitForLog((l) => l.msg === "backup done" && l.jobId === ended.id, 15_000);
  const job = await site.agent.client().getJob("g1", ended.id); // with the controller's resume report
  await follower.waitFor("the job's done event", (e) => e.jobId === job.id && e.phase === Phase.PHASE_DONE, 10_000);
  await sleep(200); // the resumed app writes a few more records
  return { site, job, timeline: readTimeline(stack, job.id, follower, since) };
}

async function withSite(storage: GuestStorage, run: (site: Site, follower: EventFollower) => Promise<void>): Promise<void> {
  const site = await Site.start({
    guests: [{ id: "g1", storage, stacks: ["app"], seedBytes: SEED_BYTES }],
    agentConfig: { zstdLevel: ZSTD_LEVEL },
    btrfsSizeBytes: 1024 ** 3,
  });
  const follower = new EventFollower({ address: site.agent.socketAddress, guestId: "g1" });
  try {
    await run(site, follower);
    const jobs = (await site.agent.client().listJobs("g1")).map((j) => ({ guestId: "g1", jobId: j.id }));
    const report = await awaitConvergence(site, { jobs, sinceMs: 0, followers: [follower], timeoutMs: 10_000 });
    assert.deepEqual(report.problems, [], "nothing is left behind");
  } finally {
    await follower.stop();
    await site.teardown();
  }
}

/** Restores the archive and checks write isolation and completeness against the live records. */
async function assertRestores(site: Site, job: Job, t: BackupTimeline): Promise<void> {
  const restoreDir = await makeTempDir("lull-e2e-restore-");
  try {
    await restoreArchive(job.archivePath, restoreDir);
    const restored = readRecords(recordsFile(join(restoreDir, "app")));
    const live = readRecords(recordsFile(site.stack("g1").dataDir));
    // snapshot: none has no snapshot time; the data is then from just before the restart.
    const snapshotAt = job.snapshotAt ?? new Date(t.firstAfter.at - 1);
    for (const check of checkRestoredRecords(restored, live, snapshotAt)) assert.ok(check.ok, `${check.name}: ${check.detail}`);
    assert.deepEqual(restored.at(-1), t.lastBefore, "the newest restored record is the app's last before the stop");
  } finally {
    await removeDir(restoreDir);
  }
}

/**
 * The controller measures from its decision to stop until `status` confirmed the restart, so its
 * figure covers the app's real outage (never less) plus the stop/status command overheads; the
 * agent records what the controller reported.
 */
function assertDowntimeReport(job: Job, t: BackupTimeline, why: string): void {
  const gap = t.firstAfter.at - t.lastBefore.at;
  assert.ok(t.resumed.downtimeMs >= gap - 50, `reported downtime ${t.resumed.downtimeMs} ms is less than the app's outage ${gap} ms${why}`);
  assert.ok(t.resumed.downtimeMs <= gap + 3_000, `reported downtime ${t.resumed.downtimeMs} ms is far above the app's outage ${gap} ms${why}`);
  const entry = job.stacks.find((s) => s.stack === "app");
  assert.equal(entry?.downtimeMs, t.resumed.downtimeMs, `the agent recorded the controller's figure${why}`);
}

function assertEarlyResume(job: Job, t: BackupTimeline): void {
  const why = `\n${describeTimeline(t)}`;
  const { quiescing, snapshotted, archiving, done } = t.phaseAt;
  assert.deepEqual(t.phases, ["queued", "quiescing", "snapshotting", "snapshotted", "archiving", "done"], why);
  assert.ok(quiescing !== undefined && snapshotted !== undefined && archiving !== undefined && done !== undefined, why);
  // Up until the stop, which came after `quiescing`.
  assert.ok(t.stopBegin >= quiescing, `stopped before quiescing${why}`);
  assert.ok(t.lastBefore.at >= t.stopBegin - 100, `the app was not running until the stop${why}`);
  assert.ok(t.lastBefore.at <= t.stopEnd, `the app wrote after its stop returned${why}`);
  // Down until `snapshotted`: nothing written from the stop to the snapshot; restarted only after it.
  const snapshotAt = job.snapshotAt!.getTime();
  assert.ok(t.lastBefore.at < snapshotAt && snapshotAt < t.firstAfter.at, `the snapshot is not inside the outage${why}`);
  assert.ok(t.startBegin >= snapshotted, `started before snapshotted${why}`);
  assert.ok(t.firstAfter.at >= snapshotted, `the app wrote before snapshotted${why}`);
  // ...and not until the end: running again well before archiving ended.
  assert.ok(t.firstAfter.at <= done - EARLY_MARGIN_MS, `resumed less than ${EARLY_MARGIN_MS} ms before done${why}`);
  assert.ok(t.resumed.at < done, `the controller reported the resume after done${why}`);
  assert.equal(t.resumed.early, true, why);
  assert.equal(t.resumed.cause, "snapshotted", why);
  assertDowntimeReport(job, t, why);
  const entry = job.stacks.find((s) => s.stack === "app");
  assert.equal(entry?.state, StackState.STACK_STATE_RESUMED, why);
  assert.equal(entry?.resumedEarly, true, why);
}

test("dir (copy): the app is down from the stop until snapshotted, runs again while archiving, and the archive restores", async () => {
  await withSite("dir-copy", async (site, follower) => {
    const { job, timeline } = await backupOnce(site, follower);
    assert.equal(job.mode, SnapshotMode.SNAPSHOT_MODE_COPY);
    assertEarlyResume(job, timeline);
    await assertRestores(site, job, timeline);
  });
});

test("btrfs (loop-mounted, real read-only snapshot): down only until snapshotted, and the archive restores", async (t) => {
  const why = await loopBtrfsUnavailable();
  requireAvailable("a loop-mounted btrfs (root, btrfs-progs)", why);
  await withSite("btrfs", async (site, follower) => {
    const { job, timeline } = await backupOnce(site, follower);
    assert.equal(job.mode, SnapshotMode.SNAPSHOT_MODE_SNAPSHOT);
    assertEarlyResume(job, timeline);
    await assertRestores(site, job, timeline);
  });
});

test("dir (snapshot: none): no snapshotted; the app stays down through archiving and resumes after done (early=false)", async () => {
  await withSite("dir-none", async (site, follower) => {
    const { job, timeline: t } = await backupOnce(site, follower);
    const why = `\n${describeTimeline(t)}`;
    assert.equal(job.mode, SnapshotMode.SNAPSHOT_MODE_NONE);
    assert.deepEqual(t.phases, ["queued", "quiescing", "archiving", "done"], why);
    const done = t.phaseAt.done!;
    assert.ok(t.lastBefore.at <= t.stopEnd && t.stopBegin >= t.phaseAt.quiescing!, why);
    assert.ok(t.startBegin >= done, `started before done${why}`);
    assert.ok(t.firstAfter.at >= done, `the app wrote before the job was done${why}`);
    assert.ok(done - t.phaseAt.archiving! >= EARLY_MARGIN_MS, `archiving was too short to tell${why}`);
    assert.equal(t.resumed.early, false, why);
    assert.equal(t.resumed.cause, "terminal", why);
    assertDowntimeReport(job, t, why);
    const entry = job.stacks.find((s) => s.stack === "app");
    assert.equal(entry?.resumedEarly ?? false, false, why);
    await assertRestores(site, job, t);
  });
});
