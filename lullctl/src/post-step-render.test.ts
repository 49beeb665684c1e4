// lullctl shows a stack's post-step outcome (reported by its controller) in `job`, in the backup summary and in --json.
import { strict as assert } from "node:assert";
import { test } from "node:test";
import { Job, Phase, StackState } from "@lull/proto";
import { stackJson } from "./json-views.js";
import { backupSummary, jobDetails } from "./render.js";

const job = Job.fromPartial({
  id: "j-00000000000000000000000001",
  guestId: "demo",
  phase: Phase.PHASE_DONE,
  stacks: [
    { stack: "db", state: StackState.STACK_STATE_RESUMED, downtimeMs: 40, resumedEarly: true, postStep: "failed: pre[0] postgres: the session ended before resume" },
    { stack: "web", state: StackState.STACK_STATE_RESUMED, downtimeMs: 30, resumedEarly: true },
  ],
});

test("job details and the backup summary show the post steps of the stacks that reported them", () => {
  const details = jobDetails(job);
  assert.ok(details.some((l) => /^\s+post steps\s+failed: pre\[0\] postgres: the session ended before resume$/.test(l)), details.join("\n"));
  assert.equal(details.filter((l) => l.includes("post steps")).length, 1, "web reported none");
  const summary = backupSummary(job);
  assert.ok(summary.includes("post steps   db: failed: pre[0] postgres: the session ended before resume"), summary.join("\n"));
});

test("--json carries postStep, null when none was reported", () => {
  assert.equal(stackJson(job.stacks[0]!).postStep, "failed: pre[0] postgres: the session ended before resume");
  assert.equal(stackJson(job.stacks[1]!).postStep, null);
});
