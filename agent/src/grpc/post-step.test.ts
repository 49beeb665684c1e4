// The post-step outcome a controller reports with ReportResumed: validated, stored per stack (job_stacks.post_step,
// migration 2), returned by GetJob, kept across an agent restart, and absent when the controller reported none.
import { strict as assert } from "node:assert";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, it } from "node:test";
import { status } from "@grpc/grpc-js";
import { Phase, StackState } from "@lull/proto";
import Database from "better-sqlite3";
import { DATABASE_FILE } from "../agent.js";
import { FakeEngine } from "../testing/fake-engine.js";
import { rejectsWith, startTestAgent, waitForEnd, waitForJob, type TestAgent } from "../testing/agent-harness.js";

let current: TestAgent | undefined;
afterEach(async () => {
  if (!current) return;
  await current.stop();
  rmSync(current.dir, { recursive: true, force: true });
  current = undefined;
});

async function jobWithTwoQuiescedStacks(): Promise<{ t: TestAgent; jobId: string }> {
  const t = await startTestAgent({ engine: new FakeEngine(), config: {} });
  current = t;
  for (const stack of ["db", "web"]) await t.api.registerStack({ guestId: "demo", stack, controllerId: `ctl-${stack}` });
  const { job } = await t.api.startBackup({ guestId: "demo" });
  const jobId = job!.id;
  await waitForJob(t, "demo", jobId, (j) => j.phase === Phase.PHASE_QUIESCING);
  for (const stack of ["db", "web"]) await t.api.acknowledgeQuiesce({ guestId: "demo", jobId, stack });
  await waitForEnd(t, "demo", jobId);
  return { t, jobId };
}

describe("ReportResumed post_step", () => {
  it("is stored per stack and returned by GetJob; a stack that reported none has no post_step", async () => {
    const { t, jobId } = await jobWithTwoQuiescedStacks();
    const outcome = "failed: pre[0] postgres: the session ended before resume (exit 2)";
    await t.api.reportResumed({ guestId: "demo", jobId, stack: "db", downtimeMs: 10, early: true, resumedAt: new Date(), postStep: outcome });
    await t.api.reportResumed({ guestId: "demo", jobId, stack: "web", downtimeMs: 12, early: true, resumedAt: new Date() });
    const job = await t.api.getJob({ guestId: "demo", jobId });
    const db = job.stacks.find((s) => s.stack === "db");
    const web = job.stacks.find((s) => s.stack === "web");
    assert.equal(db?.state, StackState.STACK_STATE_RESUMED);
    assert.equal(db?.postStep, outcome);
    assert.equal(web?.state, StackState.STACK_STATE_RESUMED);
    assert.equal(web?.postStep, undefined);

    // Persisted: read back from the database file itself (read-only, beside the running agent).
    const sqlite = new Database(join(t.config.dataDir, DATABASE_FILE), { readonly: true });
    try {
      const rows = sqlite.prepare("SELECT stack, post_step FROM job_stacks WHERE job_id = ? ORDER BY stack").all(jobId);
      assert.deepEqual(rows, [
        { stack: "db", post_step: outcome },
        { stack: "web", post_step: "" },
      ]);
    } finally {
      sqlite.close();
    }
  });

  it("a post_step with control characters or past 1024 characters is INVALID_ARGUMENT", async () => {
    const { t, jobId } = await jobWithTwoQuiescedStacks();
    const base = { guestId: "demo", jobId, stack: "db", downtimeMs: 1, early: false, resumedAt: new Date() };
    await rejectsWith(t.api.reportResumed({ ...base, postStep: "ok\u0007" }), "LULL_E_INVALID_ARGUMENT", status.INVALID_ARGUMENT);
    await rejectsWith(t.api.reportResumed({ ...base, postStep: "x".repeat(1025) }), "LULL_E_INVALID_ARGUMENT", status.INVALID_ARGUMENT);
  });
});
