// The resume deadline: a timer that depends on nothing but the clock resumes the stack in time,
// whatever the agent does (killed, blackholed, stuck before the snapshot). It fires at the marker's
// resumeAt, the deadline minus the lead the start needs, so the stack runs again *by* the deadline.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { Consistency, EventKind, Phase, StackState } from "@lull/proto";
import { collectEvents } from "@lull/agent/testing";
import { Harness } from "./testing/harness.js";

const DEADLINE_MS = 4_000;
const LEAD_MS = 2_000;

interface Quiesced {
  jobId: string;
  stoppedAt: number;
  resumeDeadline: number;
  resumeAt: number;
}

/** Quiesces a job and returns the marker's times. */
async function quiesce(h: Harness): Promise<Quiesced> {
  const job = await h.agent.createJob();
  await h.agent.to(job.id, Phase.PHASE_QUIESCING);
  await h.agent.waitForStack(job.id, "app", StackState.STACK_STATE_QUIESCED);
  const read = h.markers.read();
  assert.equal(read.kind, "present");
  if (read.kind !== "present") throw new Error("no marker");
  assert.equal(h.stack.isRunning(), false);
  const { stoppedAt, resumeDeadline, resumeAt } = read.marker;
  return { jobId: job.id, stoppedAt, resumeDeadline, resumeAt };
}

/** When the stack's start command finished (the stack is up), for starts after `since`. */
function startedAt(h: Harness, since = 0): number {
  const start = h.stack.events().find((e) => e.op === "start" && e.ok && e.at >= since);
  assert.ok(start, "the stack was started");
  return start.at;
}

test("agent killed after the acknowledgement: started at the resume point, running by the deadline", async (t) => {
  const h = await Harness.create({ resumeDeadlineMs: DEADLINE_MS, resumeLeadMs: LEAD_MS });
  t.after(() => h.cleanup());
  await h.startRegistered();
  const q = await quiesce(h);
  assert.equal(q.resumeDeadline - q.stoppedAt, DEADLINE_MS);
  assert.equal(q.resumeDeadline - q.resumeAt, LEAD_MS, "the configured lead, nothing measured yet");
  await h.agent.kill();

  const resumed = await h.logs.waitFor("stack resumed", (l) => l.jobId === q.jobId, DEADLINE_MS + 3_000);
  assert.equal(resumed.cause, "deadline");
  assert.equal(resumed.early, false);
  const [near] = h.logs.find("resume deadline near — resuming the stack");
  assert.equal(near?.leadMs, LEAD_MS);
  assert.equal(h.stack.isRunning(), true);
  assert.equal(h.markers.read().kind, "none");
  const at = startedAt(h);
  assert.ok(at >= q.resumeAt - 50, `not resumed before the resume point (${at - q.resumeAt} ms)`);
  assert.ok(at <= q.resumeDeadline, `running ${at - q.resumeDeadline} ms after the deadline`);
});

test("a slow start measured at one backup moves the next backup's resume point earlier, so it is up by the deadline", async (t) => {
  const SLOW_MS = 1_200;
  const h = await Harness.create({ resumeDeadlineMs: 8_000, resumeLeadMs: 0 });
  t.after(() => h.cleanup());
  h.stack.setFault("slow-start", String(SLOW_MS));
  await h.startRegistered();

  // First backup: resumed at `snapshotted`; the controller measures the slow start.
  const first = await quiesce(h);
  assert.equal(first.resumeAt, first.resumeDeadline, "lead 0 and nothing measured: the resume point is the deadline");
  await h.agent.to(first.jobId, Phase.PHASE_SNAPSHOTTED);
  await h.agent.waitForStack(first.jobId, "app", StackState.STACK_STATE_RESUMED, 10_000);
  await h.agent.to(first.jobId, Phase.PHASE_DONE);
  await h.logs.waitFor("backup done", (l) => l.jobId === first.jobId, 10_000);

  // Kept next to the marker, so a restarted controller starts from it too.
  const kept = JSON.parse(readFileSync(join(h.markerDir, "app.resume-timing.json"), "utf8")) as { recentResumesMs: number[] };
  assert.ok((kept.recentResumesMs[0] ?? 0) >= SLOW_MS, `recorded ${kept.recentResumesMs.join(", ")} ms`);

  // Second backup: the agent dies; the timer starts the slow stack early enough.
  const second = await quiesce(h);
  const lead = second.resumeDeadline - second.resumeAt;
  assert.ok(lead >= 2 * SLOW_MS, `lead ${lead} ms covers twice the measured start (${SLOW_MS} ms)`);
  const killedAt = Date.now();
  await h.agent.kill();
  const resumed = await h.logs.waitFor("stack resumed", (l) => l.jobId === second.jobId, 12_000);
  assert.equal(resumed.cause, "deadline");
  const at = startedAt(h, killedAt);
  assert.ok(at <= second.resumeDeadline, `the slow stack ran again ${at - second.resumeDeadline} ms after its deadline`);
});

test("agent blackholed (calls hang, long call timeout): the timer still resumes by the deadline", async (t) => {
  const h = await Harness.create({ resumeDeadlineMs: DEADLINE_MS, resumeLeadMs: LEAD_MS, callTimeoutMs: 30_000 });
  t.after(() => h.cleanup());
  await h.startRegistered();
  const q = await quiesce(h);
  h.agent.faults.hang.add("getJob");
  h.agent.faults.hang.add("listJobs");
  await h.agent.to(q.jobId, Phase.PHASE_SNAPSHOTTING); // an event makes the loop call GetJob, which hangs

  await h.logs.waitFor("stack resumed", (l) => l.jobId === q.jobId, DEADLINE_MS + 3_000);
  const at = startedAt(h);
  assert.ok(at <= q.resumeDeadline, `resumed ${at - q.resumeDeadline} ms after the deadline`);
  assert.equal(h.stack.isRunning(), true);
  h.agent.faults.hang.clear(); // let the shutdown's last report through instead of waiting out its bound
});

test("agent reachable but stuck before the snapshot: resumed at the resume point and reported", async (t) => {
  const h = await Harness.create({ resumeDeadlineMs: DEADLINE_MS, resumeLeadMs: LEAD_MS });
  t.after(() => h.cleanup());
  await h.startRegistered();
  const q = await quiesce(h);
  await h.agent.to(q.jobId, Phase.PHASE_SNAPSHOTTING);
  await h.agent.waitForStack(q.jobId, "app", StackState.STACK_STATE_RESUMED, DEADLINE_MS + 3_000);
  const entry = await h.agent.stack(q.jobId, "app");
  assert.equal(entry?.resumedEarly, false);
  const downtime = entry?.downtimeMs ?? 0;
  assert.ok(downtime >= DEADLINE_MS - LEAD_MS - 50 && downtime <= DEADLINE_MS, `downtime ${downtime} ms`);
  assert.ok(startedAt(h) <= q.resumeDeadline);
  // The stack ran again before the copy existed: the backup that follows is crash-consistent at best, and says why.
  await h.agent.to(q.jobId, Phase.PHASE_SNAPSHOTTED);
  const done = await h.agent.to(q.jobId, Phase.PHASE_DONE);
  assert.equal(done.phase, Phase.PHASE_DONE);
  assert.equal(done.consistency, Consistency.CONSISTENCY_CRASH);
  const events = await collectEvents(h.agent.t, { jobId: q.jobId }, (e) => e.kind === EventKind.EVENT_KIND_PHASE && e.phase === Phase.PHASE_DONE);
  const note = events.find((e) => e.kind === EventKind.EVENT_KIND_NOTE && /ran again/.test(e.message));
  assert.match(note?.message ?? "", /^stack app ran again while the job was snapshotting, before its copy existed .*crash-consistent at best$/);
});
