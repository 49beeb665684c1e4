// A stack that is already stopped when a backup of its guest begins (an operator's maintenance, an
// app that crashed) is left as it was found: acknowledged as LEFT_STOPPED, never stopped, never
// started, no marker; the next backup with the stack running again goes the normal way.
import assert from "node:assert/strict";
import { test } from "node:test";
import { Phase, StackState } from "@lull/proto";
import { Harness } from "./testing/harness.js";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test("a stack found stopped is acknowledged as left stopped and is not started at snapshotted or at the end", async (t) => {
  const h = await Harness.create({ stackRunning: false });
  t.after(() => h.cleanup());
  await h.startRegistered();

  const job = await h.agent.createJob();
  await h.agent.to(job.id, Phase.PHASE_QUIESCING);
  await h.agent.waitForStack(job.id, "app", StackState.STACK_STATE_LEFT_STOPPED);
  assert.equal(h.markers.read().kind, "none", "no marker: nothing was stopped, nothing is owed");
  assert.ok(h.logs.find("stack already stopped — left as it is", (l) => l.jobId === job.id).length === 1);

  await h.agent.to(job.id, Phase.PHASE_SNAPSHOTTING);
  await h.agent.to(job.id, Phase.PHASE_SNAPSHOTTED);
  await sleep(400);
  await h.agent.to(job.id, Phase.PHASE_DONE);
  await h.logs.waitFor("backup done", (l) => l.jobId === job.id);
  assert.equal(h.stack.isRunning(), false, "still stopped after the backup");
  assert.deepEqual(h.stack.events(), [], "neither a stop nor a start command ran");
  assert.equal((await h.agent.stack(job.id, "app"))?.state, StackState.STACK_STATE_LEFT_STOPPED);
  assert.equal(h.logs.find("stack resumed").length, 0);

  // Started again by its operator: the next backup stops and resumes it as usual.
  h.stack.startNow();
  h.stack.clearEvents();
  const next = await h.agent.createJob();
  await h.agent.to(next.id, Phase.PHASE_QUIESCING);
  await h.agent.waitForStack(next.id, "app", StackState.STACK_STATE_QUIESCED);
  assert.equal(h.stack.isRunning(), false);
  await h.agent.to(next.id, Phase.PHASE_SNAPSHOTTED);
  await h.agent.waitForStack(next.id, "app", StackState.STACK_STATE_RESUMED);
  assert.equal(h.stack.isRunning(), true);
  assert.deepEqual(h.stack.events().map((e) => e.op), ["stop", "start"]);
});

test("a failed acknowledgement of a stack left stopped is retried, never turned into a refusal", async (t) => {
  const h = await Harness.create({ stackRunning: false });
  t.after(() => h.cleanup());
  await h.startRegistered();
  h.agent.faults.failNext.add("acknowledgeQuiesce");
  const job = await h.agent.createJob();
  await h.agent.to(job.id, Phase.PHASE_QUIESCING);
  await h.agent.waitForStack(job.id, "app", StackState.STACK_STATE_LEFT_STOPPED, 10_000);
  assert.ok(h.logs.find("acknowledging the quiesce failed — will look again", (l) => l.jobId === job.id).length >= 1);
  assert.equal(h.logs.find("refusing the quiesce").length, 0);
  assert.deepEqual(h.stack.events(), []);
});
