// A scheduled backup end to end (issue #11): a real lull-agent whose config has a backup schedule
// for one native guest (dir, copy), the demo app as that guest's stack with its real
// lull-controller (resume: early). The schedule's calendar event fires once a minute at a second a
// few seconds after the site is up; the test waits for that tick's run to end and checks what an
// operator sees: one job for the tick, requested by the schedule and done; the stack ran again
// while the archive was still being written (the controller logged the resume, the job recorded
// it); `lullctl schedules` (JSON and text) shows the run's result and the next run. Then nothing is
// left behind.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { test } from "node:test";
import { Phase, SnapshotMode, StackState, type Job } from "@lull/proto";
import { phaseSequence } from "../support/agent-client.js";
import { ENTRY_POINTS, EventFollower, Site, awaitConvergence, readResumedLog, waitFor } from "../support/index.js";

const GUEST = "g1";
const SCHEDULE_ID = "every-minute";
/**
 * 96 MiB of half-random data at zstd level 15: archiving takes seconds, while the stack is down
 * only for its stop, the dir copy and its start (backup.test.ts uses 192 MiB to prove a 1 s margin;
 * this test only needs the downtime shorter than the archiving, and keeps its run time short).
 */
const SEED_BYTES = 96 * 1024 ** 2;
const ZSTD_LEVEL = 15;
/**
 * The tick is this long after the test starts: the site (seed data, agent, app, controller) is up
 * by then (13 s here under a load of 7 on 2 CPUs). Were it not, the tick a minute later runs: the
 * test then takes a minute longer but checks the same.
 */
const TICK_LEAD_MS = 20_000;

function lullctl(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [ENTRY_POINTS.lullctl, ...args], { timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === "number" ? err.code : -1) : 0, stdout, stderr });
    });
  });
}

/** `lullctl --json schedules` as printed (ScheduleInfo with timestamps as ISO strings). */
interface PrintedTick {
  tickAt: string;
  outcome: string;
  reason: string;
  node: string;
  startedAt?: string;
  endedAt?: string;
  runRef: string;
}
interface PrintedSchedule {
  id: string;
  action: string;
  schedule: string;
  timeZone: string;
  scope: string;
  catchUp: string;
  lastRun?: PrintedTick;
  nextRunAt?: string;
  running: boolean;
  recent: PrintedTick[];
}

test("a scheduled backup with a real controller: one job for the tick, the stack resumes early, lullctl schedules shows the run", async (t) => {
  // Once a minute, at the second TICK_LEAD_MS from now: exactly one tick falls into the test.
  const testStartAt = Date.now();
  const second = Math.floor((testStartAt + TICK_LEAD_MS) / 1000) % 60;
  const calendar = `*:*:${String(second).padStart(2, "0")}`;
  const site = await Site.start({
    guests: [{ id: GUEST, storage: "dir-copy", stacks: [{ name: "app", resume: "early" }], seedBytes: SEED_BYTES }],
    agentConfig: {
      zstdLevel: ZSTD_LEVEL,
      schedules: { list: [{ id: SCHEDULE_ID, action: "backup", schedule: calendar, timeZone: "UTC", guests: [GUEST], catchUp: "skip" }] },
    },
  });
  const follower = new EventFollower({ address: site.agent.socketAddress, guestId: GUEST });
  const agentUpAt = Date.now();
  const socket = ["--socket", site.agent.socketPath];
  try {
    const client = site.agent.client();
    const stack = site.stack(GUEST, "app");
    assert.deepEqual(await client.listJobs(GUEST), [], "no job before the tick");

    // The tick: its run starts the guest's job; the run ends after the job does.
    const started = await waitFor("the scheduled job", async () => (await client.listJobs(GUEST))[0], 90_000, 200);
    const ended = await client.waitForEnd(GUEST, started.id, 60_000);
    assert.equal(ended.phase, Phase.PHASE_DONE, `job ${ended.id}: ${ended.errorCode} ${ended.errorMessage}`);
    const info = await waitFor(
      "the tick's run to end",
      async () => {
        const r = await client.api.listSchedules({ scheduleId: SCHEDULE_ID, ticks: 0 });
        const s = r.schedules[0];
        return s?.lastRun && s.lastRun.outcome !== "running" ? s : undefined;
      },
      15_000,
      200,
    );
    const tickAt = info.lastRun!.tickAt!.getTime();
    assert.equal(new Date(tickAt).getUTCSeconds(), second, `the tick is at the calendar's second (${calendar})`);
    assert.equal(info.lastRun!.reason, "", "an on-time run (a catch-up says so in its reason)");

    // Exactly one job for the tick, started by the schedule, with the tick's idempotency key.
    const jobs = await client.listJobs(GUEST);
    assert.deepEqual(jobs.map((j) => j.id), [started.id], "one job for the tick");
    await stack.controller!.proc.waitForLog((l) => l.msg === "backup done" && l.jobId === ended.id, 15_000);
    const job: Job = await client.getJob(GUEST, ended.id); // with the controller's resume report
    assert.equal(job.requestedBy, `schedule ${SCHEDULE_ID}`);
    assert.equal(job.idempotencyKey, `schedule:${SCHEDULE_ID}:${tickAt}:${GUEST}`);
    assert.equal(job.engine, "native");
    assert.equal(job.mode, SnapshotMode.SNAPSHOT_MODE_COPY);
    assert.ok(job.createdAt!.getTime() >= tickAt, "the job was created at or after its tick");
    await follower.waitFor("the job's done event", (e) => e.jobId === job.id && e.phase === Phase.PHASE_DONE, 10_000);
    const phases = phaseSequence(follower.events.filter((e) => e.jobId === job.id));
    assert.deepEqual(phases, ["queued", "quiescing", "snapshotting", "snapshotted", "archiving", "done"]);

    // The stack resumed early: at snapshotted, its downtime shorter than the archiving after the snapshot.
    const entry = job.stacks.find((s) => s.stack === "app");
    const snapshotAt = job.snapshotAt!.getTime();
    const finishedAt = job.finishedAt!.getTime();
    const phaseAt = (phase: Phase) => follower.events.find((e) => e.jobId === job.id && e.phase === phase)?.at?.getTime() ?? NaN;
    const snapshottedAt = phaseAt(Phase.PHASE_SNAPSHOTTED);
    const doneAt = phaseAt(Phase.PHASE_DONE);
    const why = ` (downtime ${entry?.downtimeMs} ms; snapshot +${snapshotAt - tickAt} ms, snapshotted +${snapshottedAt - tickAt} ms, resumed +${(entry?.resumedAt?.getTime() ?? NaN) - tickAt} ms, finished +${finishedAt - tickAt} ms after the tick; archive ${job.archiveMs} ms)`;
    t.diagnostic(`site up ${agentUpAt - testStartAt} ms after the test started, tick ${tickAt - agentUpAt} ms after that${why}`);
    assert.equal(entry?.state, StackState.STACK_STATE_RESUMED, why);
    assert.equal(entry?.resumedEarly, true, why);
    assert.ok(entry.downtimeMs > 0, why);
    assert.ok(entry.downtimeMs < finishedAt - snapshotAt, `the stack was down longer than the job ran after its snapshot${why}`);
    const resumedAt = entry.resumedAt!.getTime();
    assert.ok(snapshotAt <= snapshottedAt && snapshottedAt <= resumedAt && resumedAt < doneAt && doneAt <= finishedAt, `resumed outside snapshotted..done${why}`);
    const line = stack.controller!.proc.logs.find((l) => l.msg === "stack resumed" && l.jobId === job.id);
    assert.ok(line, "the controller logged its resume");
    const resumed = readResumedLog(line);
    assert.equal(resumed.early, true);
    assert.equal(line.cause, "snapshotted");
    assert.equal(Number(entry.downtimeMs), resumed.downtimeMs, "the job records the controller's downtime");
    assert.equal(await stack.status(), "running");

    // lullctl --json schedules: the schedule, its last run done with this job, the next run.
    const json = await lullctl([...socket, "--json", "schedules"]);
    assert.equal(json.code, 0, json.stderr);
    const printed = JSON.parse(json.stdout) as { schedules: PrintedSchedule[] };
    assert.equal(printed.schedules.length, 1, json.stdout);
    const s = printed.schedules[0]!;
    assert.equal(s.id, SCHEDULE_ID);
    assert.equal(s.action, "backup");
    assert.equal(s.schedule, calendar);
    assert.equal(s.timeZone, "UTC");
    assert.equal(s.scope, "node");
    assert.equal(s.catchUp, "skip");
    assert.equal(s.running, false, json.stdout);
    assert.equal(s.lastRun?.outcome, "done", json.stdout);
    assert.equal(Date.parse(s.lastRun.tickAt), tickAt);
    assert.equal(s.lastRun.runRef, job.id, "the last run names its job");
    assert.equal(s.lastRun.node, "test-node");
    assert.ok(s.lastRun.startedAt && s.lastRun.endedAt, json.stdout);
    assert.ok(Date.parse(s.lastRun.startedAt) <= job.createdAt!.getTime(), "the run started before its job");
    assert.ok(Date.parse(s.lastRun.endedAt) >= finishedAt, "the run ended after its job");
    const next = Date.parse(s.nextRunAt ?? "");
    assert.ok(next > tickAt && new Date(next).getUTCSeconds() === second, `next run ${s.nextRunAt} after the tick, at second ${second}`);
    assert.deepEqual(s.recent.map((t) => [t.tickAt, t.outcome, t.runRef]), [[s.lastRun.tickAt, "done", job.id]], "the only tick recorded is this run");

    // lullctl schedules (text): names the schedule, its last result and the next run.
    const text = await lullctl([...socket, "schedules"]);
    assert.equal(text.code, 0, text.stderr);
    const lines = text.stdout.split("\n");
    assert.equal(lines[0], `${SCHEDULE_ID}  backup  '${calendar}' UTC  scope node  catch-up skip`, text.stdout);
    assert.equal(lines[1], `  last run ${s.lastRun.tickAt.replace(".000Z", "Z")} done`, text.stdout);
    assert.equal(lines[2], `  next run ${s.nextRunAt!.replace(".000Z", "Z")}`, text.stdout);
    assert.match(text.stdout, new RegExp(`^  ${s.lastRun.tickAt.replace(".000Z", "Z")}  done +test-node  ${job.id}$`, "m"), text.stdout);

    const report = await awaitConvergence(site, { jobs: [{ guestId: GUEST, jobId: job.id }], sinceMs: 0, followers: [follower], timeoutMs: 10_000 });
    assert.deepEqual(report.problems, [], "nothing is left behind");
    assert.equal((await client.listJobs(GUEST)).length, 1, "no second job started meanwhile");
  } finally {
    await follower.stop();
    await site.teardown();
  }
});
