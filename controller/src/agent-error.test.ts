// An agent that answers with an error is not an agent that does not know the job: the marker and
// its deadline stay, the controller asks again and resumes by the deadline (as for an unreachable
// agent); a resume report the agent answered with an error is sent again, not dropped.
import assert from "node:assert/strict";
import { test } from "node:test";
import { Phase, StackState } from "@lull/proto";
import type { ErrorCode } from "@lull/shared";
import { waitUntil } from "@lull/agent/testing";
import { Harness } from "./testing/harness.js";

const S = StackState;

for (const code of ["LULL_E_PERMISSION_DENIED", "LULL_E_UNKNOWN_GUEST", "LULL_E_INTERNAL"] as const satisfies readonly ErrorCode[]) {
  test(`GetJob answered ${code}: the stack is held, asked again, and resumed by the deadline — never as an unknown job`, async (t) => {
    const h = await Harness.create({ stackRunning: false, pollIntervalMs: 100 });
    t.after(() => h.cleanup());
    const job = await h.agent.seedJob({ phase: Phase.PHASE_SNAPSHOTTING, app: S.STACK_STATE_QUIESCED });
    h.agent.faults.answerWith.set("getJob", code);
    const marker = h.seedMarker(job.id, { deadlineInMs: 1_500 });
    h.start();
    assert.equal((await h.logs.waitFor("recovered")).outcome, "holding");
    assert.equal(h.stack.isRunning(), false, "held stopped");
    assert.equal(h.markers.read().kind, "present", "the marker stays");
    await waitUntil(() => h.agent.faults.callsOf("getJob").length >= 3, 3_000);
    assert.equal(h.stack.isRunning(), false, "still held while the agent errs, before the deadline");
    const resumed = await h.logs.waitFor("stack resumed", () => true, 4_000);
    assert.equal(resumed.cause, "deadline");
    assert.equal(h.logs.find("the agent does not know the marker's job — resuming the stack").length, 0);
    const start = h.stack.events().find((e) => e.op === "start");
    assert.ok(start && start.at >= marker.resumeAt - 50, `started ${start && marker.resumeAt - start.at} ms before the resume point`);
    assert.equal(h.markers.read().kind, "none");
  });
}

test("a resume report the agent answers with an error is kept and sent again once it accepts", async (t) => {
  const h = await Harness.create({ stackRunning: false, pollIntervalMs: 100 });
  t.after(() => h.cleanup());
  const job = await h.agent.seedJob({ phase: Phase.PHASE_SNAPSHOTTED, app: S.STACK_STATE_QUIESCED });
  h.agent.faults.answerWith.set("reportResumed", "LULL_E_PERMISSION_DENIED");
  h.seedMarker(job.id, { deadlineInMs: 20_000 });
  h.start();
  await h.logs.waitFor("stack resumed");
  assert.equal(h.stack.isRunning(), true);
  await waitUntil(() => h.agent.faults.callsOf("reportResumed").length >= 2, 3_000);
  assert.equal((await h.agent.stack(job.id, "app"))?.state, S.STACK_STATE_QUIESCED, "not reported yet");
  assert.equal(h.logs.find("the agent rejected the resume notice").length, 0, "not dropped");
  h.agent.faults.answerWith.delete("reportResumed");
  await h.agent.waitForStack(job.id, "app", S.STACK_STATE_RESUMED);
  assert.equal((await h.agent.stack(job.id, "app"))?.resumedEarly, true);
});
