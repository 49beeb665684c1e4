// Start-up recovery: a controller starts with a marker left on disk by a crashed run.
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { test } from "node:test";
import { Phase, StackState } from "@lull/proto";
import { Harness } from "./testing/harness.js";

const S = StackState;

test("before snapshotted, within the deadline, stack already stopped: re-attach without a second stop, acknowledge again", async (t) => {
  const h = await Harness.create({ stackRunning: false });
  t.after(() => h.cleanup());
  const job = await h.agent.seedJob({ phase: Phase.PHASE_QUIESCING, app: S.STACK_STATE_PENDING });
  h.seedMarker(job.id, { deadlineInMs: 20_000 });
  h.start();

  await h.agent.waitForStack(job.id, "app", S.STACK_STATE_QUIESCED);
  assert.equal(h.stack.events().filter((e) => e.op === "stop").length, 0, "not stopped a second time");
  assert.equal(h.stack.isRunning(), false, "held stopped");
  assert.equal((await h.logs.waitFor("recovered")).outcome, "holding");

  await h.agent.to(job.id, Phase.PHASE_SNAPSHOTTED);
  await h.agent.waitForStack(job.id, "app", S.STACK_STATE_RESUMED);
  assert.equal(h.stack.isRunning(), true);
  const resumed = h.logs.find("stack resumed")[0];
  assert.equal(resumed?.early, true);
  assert.equal(resumed?.stopMs, null, "the stop happened in the crashed run: not measured here");
  assert.ok(typeof resumed?.downtimeMs === "number" && resumed.downtimeMs >= 500, "downtime counts from the marker's stoppedAt");
});

test("crash between marker and stop (stack still running): recover stops it once and acknowledges", async (t) => {
  const h = await Harness.create({ stackRunning: true });
  t.after(() => h.cleanup());
  const job = await h.agent.seedJob({ phase: Phase.PHASE_QUIESCING, app: S.STACK_STATE_PENDING });
  h.seedMarker(job.id, { deadlineInMs: 20_000 });
  h.start();
  await h.agent.waitForStack(job.id, "app", S.STACK_STATE_QUIESCED);
  assert.equal(h.stack.events().filter((e) => e.op === "stop").length, 1);
  assert.equal(h.stack.isRunning(), false);
});

test("before snapshotted, already acknowledged: hold without stopping or acknowledging again", async (t) => {
  const h = await Harness.create({ stackRunning: false });
  t.after(() => h.cleanup());
  const job = await h.agent.seedJob({ phase: Phase.PHASE_SNAPSHOTTING, app: S.STACK_STATE_QUIESCED });
  h.seedMarker(job.id, { deadlineInMs: 20_000 });
  h.start();
  await h.logs.waitFor("recovered");
  assert.equal(h.stack.isRunning(), false);
  assert.equal(h.stack.events().length, 0);
  assert.equal(h.agent.faults.callsOf("acknowledgeQuiesce").length, 0);
  assert.equal(h.markers.read().kind, "present");
});

for (const [name, phase, early] of [
  ["snapshotted", Phase.PHASE_SNAPSHOTTED, true],
  ["archiving after the snapshot", Phase.PHASE_ARCHIVING, true],
  ["done", Phase.PHASE_DONE, false],
  ["failed", Phase.PHASE_FAILED, false],
] as const) {
  test(`marker of a job that is ${name}: resume at once (early=${early}) and report`, async (t) => {
    const h = await Harness.create({ stackRunning: false });
    t.after(() => h.cleanup());
    const job = await h.agent.seedJob({ phase, app: S.STACK_STATE_QUIESCED });
    h.seedMarker(job.id, { deadlineInMs: 20_000 });
    h.start();
    const recovered = await h.logs.waitFor("recovered");
    assert.equal(recovered.outcome, "resumed");
    assert.equal(h.stack.isRunning(), true);
    assert.equal(h.markers.read().kind, "none");
    const resumed = h.logs.find("stack resumed")[0];
    assert.equal(resumed?.early, early);
    assert.equal(h.agent.faults.callsOf("reportResumed").length, 1);
  });
}

test("marker of a job the agent does not know: resume at once", async (t) => {
  const h = await Harness.create({ stackRunning: false });
  t.after(() => h.cleanup());
  h.seedMarker("j-zzzzzzzzzzzzzzzzzzzzzzzzzz", { deadlineInMs: 20_000 });
  h.start();
  assert.equal((await h.logs.waitFor("recovered")).outcome, "resumed");
  assert.equal(h.stack.isRunning(), true);
  assert.equal(h.markers.read().kind, "none");
  assert.equal(h.logs.find("stack resumed")[0]?.cause, "unknown-job");
});

test("agent unreachable and the deadline already passed: resume at once without waiting for the agent", async (t) => {
  // A call timeout far longer than a resume: waiting for the agent would show plainly.
  const h = await Harness.create({ stackRunning: false, callTimeoutMs: 30_000 });
  t.after(() => h.cleanup());
  await h.agent.kill();
  h.seedMarker("j-00000000000000000000000001", { stoppedAgoMs: 5_000, deadlineInMs: -1_000 });
  const t0 = Date.now();
  h.start();
  const resumed = await h.logs.waitFor("stack resumed");
  assert.equal(resumed.cause, "deadline");
  assert.ok(Date.now() - t0 < 15_000, "did not wait for the agent");
  assert.equal(h.stack.isRunning(), true);
});

test("agent unreachable within the deadline: hold, then resume at the deadline", async (t) => {
  const h = await Harness.create({ stackRunning: false });
  t.after(() => h.cleanup());
  await h.agent.kill();
  const marker = h.seedMarker("j-00000000000000000000000001", { deadlineInMs: 1_200 });
  h.start();
  assert.equal((await h.logs.waitFor("recovered")).outcome, "holding");
  assert.equal(h.stack.isRunning(), false);
  await h.logs.waitFor("stack resumed", () => true, 3_000);
  const start = h.stack.events().find((e) => e.op === "start");
  assert.ok(start && start.at >= marker.resumeDeadline - 50 && start.at <= marker.resumeDeadline + 1_000, `started ${start && start.at - marker.resumeDeadline} ms after the deadline`);
});

test("a corrupt marker means the stack may be down: resume it", async (t) => {
  const h = await Harness.create({ stackRunning: false });
  t.after(() => h.cleanup());
  writeFileSync(h.markers.path, '{"version":1,"jobId":"j-');
  h.start();
  const resumed = await h.logs.waitFor("stack resumed");
  assert.equal(resumed.cause, "corrupt-marker");
  assert.equal(h.stack.isRunning(), true);
  assert.equal(h.markers.read().kind, "none");
});
