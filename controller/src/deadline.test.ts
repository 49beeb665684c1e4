// The resume deadline: a timer that depends on nothing but the clock resumes the stack in time,
// whatever the agent does (killed, blackholed, stuck before the snapshot).
import assert from "node:assert/strict";
import { test } from "node:test";
import { Phase, StackState } from "@lull/proto";
import { Harness } from "./testing/harness.js";

const DEADLINE_MS = 1_500;

/** Quiesces a job and returns the marker's stoppedAt and resumeDeadline. */
async function quiesce(h: Harness): Promise<{ jobId: string; stoppedAt: number; resumeDeadline: number }> {
  await h.startRegistered();
  const job = h.agent.createJob();
  h.agent.setPhase(job.id, Phase.PHASE_QUIESCING);
  await h.agent.waitForStack(job.id, "app", StackState.STACK_STATE_QUIESCED);
  const read = h.markers.read();
  assert.equal(read.kind, "present");
  if (read.kind !== "present") throw new Error("no marker");
  assert.equal(h.stack.isRunning(), false);
  return { jobId: job.id, stoppedAt: read.marker.stoppedAt, resumeDeadline: read.marker.resumeDeadline };
}

function startedAt(h: Harness): number {
  const start = h.stack.events().find((e) => e.op === "start" && e.ok);
  assert.ok(start, "the stack was started");
  return start.at;
}

test("agent killed after the acknowledgement: the stack resumes within deadline + 1 s", async (t) => {
  const h = await Harness.create({ resumeDeadlineMs: DEADLINE_MS });
  t.after(() => h.cleanup());
  const q = await quiesce(h);
  assert.equal(q.resumeDeadline - q.stoppedAt, DEADLINE_MS);
  h.agent.kill();

  const resumed = await h.logs.waitFor("stack resumed", (l) => l.jobId === q.jobId, DEADLINE_MS + 3_000);
  assert.equal(resumed.cause, "deadline");
  assert.equal(resumed.early, false);
  assert.equal(h.stack.isRunning(), true);
  assert.equal(h.markers.read().kind, "none");
  const at = startedAt(h);
  assert.ok(at >= q.resumeDeadline - 50, `not resumed before the deadline (${at - q.resumeDeadline} ms)`);
  assert.ok(at <= q.resumeDeadline + 1_000, `resumed ${at - q.resumeDeadline} ms after the deadline`);
});

test("agent blackholed (calls hang, long call timeout): the timer still resumes within deadline + 1 s", async (t) => {
  const h = await Harness.create({ resumeDeadlineMs: DEADLINE_MS, callTimeoutMs: 30_000 });
  t.after(() => h.cleanup());
  const q = await quiesce(h);
  h.agent.hang.add("getJob");
  h.agent.hang.add("listJobs");
  h.agent.setPhase(q.jobId, Phase.PHASE_SNAPSHOTTING); // an event makes the loop call GetJob, which hangs

  await h.logs.waitFor("stack resumed", (l) => l.jobId === q.jobId, DEADLINE_MS + 3_000);
  const at = startedAt(h);
  assert.ok(at <= q.resumeDeadline + 1_000, `resumed ${at - q.resumeDeadline} ms after the deadline`);
  assert.equal(h.stack.isRunning(), true);
  h.agent.hang.clear(); // let the shutdown's last report through instead of waiting out its bound
});

test("agent reachable but stuck before the snapshot: resumed at the deadline and reported", async (t) => {
  const h = await Harness.create({ resumeDeadlineMs: DEADLINE_MS });
  t.after(() => h.cleanup());
  const q = await quiesce(h);
  h.agent.setPhase(q.jobId, Phase.PHASE_SNAPSHOTTING);
  await h.agent.waitForStack(q.jobId, "app", StackState.STACK_STATE_RESUMED, DEADLINE_MS + 3_000);
  const entry = h.agent.stack(q.jobId, "app");
  assert.equal(entry?.resumedEarly, false);
  assert.ok((entry?.downtimeMs ?? 0) >= DEADLINE_MS - 50 && (entry?.downtimeMs ?? 0) <= DEADLINE_MS + 1_000, `downtime ${entry?.downtimeMs}`);
  assert.ok(startedAt(h) <= q.resumeDeadline + 1_000);
});
