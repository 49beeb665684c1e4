// A stack whose status command errs (neither exit 0 nor 3) is not a stack "already stopped by its
// operator": the controller says so at start, refuses the quiesce with the status's stderr and
// never stops the stack; the job then fails (policy fail) instead of ending app-consistent.
import assert from "node:assert/strict";
import { test } from "node:test";
import { Consistency, Phase, QuiescePolicy, StackState } from "@lull/proto";
import { waitUntil } from "@lull/agent/testing";
import { Harness } from "./testing/harness.js";
import { GUEST } from "./testing/agent.js";

const S = StackState;

test("a status that errs: an error at start, the quiesce refused with its stderr, the stack never stopped, the job failed", async (t) => {
  const h = await Harness.create({ stackRunning: true });
  t.after(() => h.cleanup());
  h.stack.setFault("fail-status");
  await h.startRegistered();
  const problem = await h.logs.waitFor("a configured stack command cannot run — quiesces are refused until it can");
  assert.match(String(problem.problem), /^driver\.status cannot tell whether the stack runs: .*exited 1: the status is unknown .*status failed: injected fault$/);

  const job = await h.agent.createJob();
  await h.agent.to(job.id, Phase.PHASE_QUIESCING);
  await h.agent.waitForStack(job.id, "app", S.STACK_STATE_REFUSED, 10_000);
  const reason = (await h.agent.stack(job.id, "app"))?.reason ?? "";
  assert.match(reason, /^the stack is not stopped: status command .* exited 1: the status is unknown .*status failed: injected fault$/);
  assert.equal(h.agent.faults.callsOf("acknowledgeQuiesce").length, 0, "not acknowledged (left-stopped or otherwise)");
  assert.equal(h.stack.events().filter((e) => e.op === "stop").length, 0, "never stopped");
  assert.equal(h.stack.isRunning(), true);
  await waitUntil(async () => (await h.agent.job(job.id)).phase === Phase.PHASE_FAILED, 10_000, "the job to fail");
  const failed = await h.agent.job(job.id);
  assert.equal(failed.errorCode, "LULL_E_QUIESCE_REFUSED");
  assert.notEqual(failed.consistency, Consistency.CONSISTENCY_APP);
});

test("under the crash-consistent policy the same refusal leaves the backup crash-consistent, never APP", async (t) => {
  const h = await Harness.create({ stackRunning: true });
  t.after(() => h.cleanup());
  h.stack.setFault("fail-status");
  await h.startRegistered();
  const { job } = await h.agent.t.api.startBackup({ guestId: GUEST, policy: QuiescePolicy.QUIESCE_POLICY_CRASH_CONSISTENT });
  await h.agent.to(job!.id, Phase.PHASE_QUIESCING);
  await h.agent.waitForStack(job!.id, "app", S.STACK_STATE_REFUSED, 10_000);
  await h.agent.to(job!.id, Phase.PHASE_SNAPSHOTTING);
  const after = await h.agent.job(job!.id);
  assert.equal(after.consistency, Consistency.CONSISTENCY_CRASH);
  assert.equal(h.stack.events().filter((e) => e.op === "stop").length, 0);
});

test("a start command that cannot run: the quiesce is refused before anything is stopped", async (t) => {
  const h = await Harness.create({ stackRunning: true, driver: { start: ["/nonexistent/lull-start"] } });
  t.after(() => h.cleanup());
  await h.startRegistered();
  const job = await h.agent.createJob();
  await h.agent.to(job.id, Phase.PHASE_QUIESCING);
  await h.agent.waitForStack(job.id, "app", S.STACK_STATE_REFUSED, 10_000);
  assert.match((await h.agent.stack(job.id, "app"))?.reason ?? "", /driver\.start cannot run: \/nonexistent\/lull-start does not exist/);
  assert.equal(h.stack.events().filter((e) => e.op === "stop").length, 0, "never stopped");
});
