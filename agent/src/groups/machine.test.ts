// The group run machine and outcome around an operator's cancel, as pure functions: what `cancel`
// records in each phase, how `end` becomes `cancelled` (and only then), and that a done run
// carries no error.
import { strict as assert } from "node:assert";
import { describe, it } from "node:test";
import { EventKind, Phase, QuiescePolicy, type Job } from "@lull/proto";
import { LullError } from "@lull/shared";
import { newJobRecord, toApiJob } from "../jobs/job.js";
import { newGroupRunRecord, type GroupRunRecord } from "./group-run.js";
import { CANCELLED_CODE, groupTransition } from "./machine.js";
import { MEMBER_FAILED_CODE, groupOutcome } from "./outcome.js";

const T0 = Date.UTC(2026, 0, 1);

function runIn(phase: Phase, patch: Partial<GroupRunRecord> = {}): GroupRunRecord {
  const run = newGroupRunRecord({ id: "g-0000000000aaaaaaaaaaaaaaaa", groupId: "shop", guestIds: ["101", "102"], policy: QuiescePolicy.QUIESCE_POLICY_FAIL, idempotencyKey: "k", quiesceTimeoutMs: 1000, requestedBy: "t", now: T0 });
  return { ...run, phase, ...patch };
}

function member(guestId: string, phase: Phase, failedIn = Phase.PHASE_UNSPECIFIED, errorCode = ""): Job {
  const job = newJobRecord({ id: `j-0000000000aaaaaaaaaaaaa${guestId}`, guestId, engine: "native", policy: 1, idempotencyKey: `m${guestId}`, quiesceTimeoutMs: 1000, requestedBy: "t", now: T0 });
  return toApiJob({ ...job, phase, failedIn, errorCode, errorMessage: errorCode ? "why" : "" });
}

describe("group machine: cancel", () => {
  for (const phase of [Phase.PHASE_QUEUED, Phase.PHASE_QUIESCING, Phase.PHASE_SNAPSHOTTING, Phase.PHASE_SNAPSHOTTED, Phase.PHASE_ARCHIVING]) {
    it(`in ${Phase[phase]}: records LULL_E_CANCELLED and the phase, keeps the phase, and emits one GROUP event`, () => {
      const step = groupTransition(runIn(phase), { type: "cancel", reason: "maintenance" }, T0 + 5);
      assert.equal(step.run.phase, phase, "the run ends once its members have");
      assert.equal(step.run.errorCode, CANCELLED_CODE);
      assert.equal(step.run.errorMessage, "maintenance");
      assert.equal(step.run.failedIn, phase);
      assert.equal(step.effects.length, 1);
      const effect = step.effects[0]!;
      assert.ok(effect.type === "emit" && effect.event.kind === EventKind.EVENT_KIND_GROUP);
      assert.equal(effect.event.errorCode, CANCELLED_CODE);
      assert.equal(effect.event.message, "cancelling: maintenance");
    });
  }

  it("while already failing: the first cause stays, watchers still see the request", () => {
    const failing = runIn(Phase.PHASE_QUIESCING, { errorCode: "LULL_E_QUIESCE_REFUSED", errorMessage: "refused", failedIn: Phase.PHASE_QUIESCING });
    const step = groupTransition(failing, { type: "cancel", reason: "stop it" }, T0);
    assert.equal(step.run.errorCode, "LULL_E_QUIESCE_REFUSED");
    assert.match(step.effects[0]?.type === "emit" ? step.effects[0].event.message : "", /cancel requested; the run already ends for an earlier cause \(LULL_E_QUIESCE_REFUSED\): stop it/);
  });

  it("a run that has ended cannot be cancelled (LULL_E_JOB_TERMINAL)", () => {
    for (const phase of [Phase.PHASE_DONE, Phase.PHASE_FAILED, Phase.PHASE_CANCELLED]) {
      assert.throws(() => groupTransition(runIn(phase), { type: "cancel", reason: "x" }, T0), (err: unknown) => err instanceof LullError && err.code === "LULL_E_JOB_TERMINAL");
    }
  });

  it("end: `cancelled` when asked so, `failed` otherwise; `done` clears a cancel that came too late", () => {
    const cancelling = runIn(Phase.PHASE_ARCHIVING, { errorCode: CANCELLED_CODE, errorMessage: "stop", failedIn: Phase.PHASE_ARCHIVING });
    const end = { type: "end" as const, failedGuests: ["102"], code: CANCELLED_CODE, message: "m" };
    assert.equal(groupTransition(cancelling, { ...end, cancelled: true }, T0).run.phase, Phase.PHASE_CANCELLED);
    assert.equal(groupTransition(cancelling, { ...end, cancelled: false }, T0).run.phase, Phase.PHASE_FAILED);
    const done = groupTransition(cancelling, { type: "end", failedGuests: [], code: "", message: "", cancelled: false }, T0).run;
    assert.deepEqual([done.phase, done.errorCode, done.errorMessage, done.failedIn], [Phase.PHASE_DONE, "", "", Phase.PHASE_UNSPECIFIED]);
  });
});

describe("group outcome after a cancel", () => {
  const cancelled = runIn(Phase.PHASE_QUIESCING, { errorCode: CANCELLED_CODE, errorMessage: "maintenance", failedIn: Phase.PHASE_QUIESCING });

  it("every member cancelled: cancelled, naming each member and the phase it was cancelled in", () => {
    const end = groupOutcome(cancelled, [member("101", Phase.PHASE_CANCELLED, Phase.PHASE_QUIESCING, CANCELLED_CODE), member("102", Phase.PHASE_CANCELLED, Phase.PHASE_SNAPSHOTTING, CANCELLED_CODE)]);
    assert.equal(end.cancelled, true);
    assert.equal(end.code, CANCELLED_CODE);
    assert.deepEqual(end.failedGuests, ["101", "102"]);
    assert.equal(end.message, "cancelled in quiescing: maintenance; 2 of 2 members did not finish: 101 cancelled in quiescing; 102 cancelled in snapshotting");
  });

  it("members done before the cancel stay done; the run is still cancelled", () => {
    const end = groupOutcome({ ...cancelled, failedIn: Phase.PHASE_ARCHIVING }, [member("101", Phase.PHASE_DONE), member("102", Phase.PHASE_CANCELLED, Phase.PHASE_ARCHIVING, CANCELLED_CODE)]);
    assert.equal(end.cancelled, true);
    assert.deepEqual(end.failedGuests, ["102"]);
  });

  it("a member that failed (or an agent restart) makes it failed: the cancel did not decide the outcome", () => {
    const restarted = groupOutcome(cancelled, [member("101", Phase.PHASE_FAILED, Phase.PHASE_QUIESCING, "LULL_E_AGENT_RESTARTED"), member("102", Phase.PHASE_CANCELLED, Phase.PHASE_QUIESCING, CANCELLED_CODE)]);
    assert.equal(restarted.cancelled, false);
    assert.equal(restarted.code, CANCELLED_CODE, "the first cause stays the code");
  });

  it("one member cancelled on its own (CancelJob) before the point still fails the group", () => {
    const memberCancelled = runIn(Phase.PHASE_QUIESCING, { errorCode: CANCELLED_CODE, errorMessage: "member 101 (job j-…) was cancelled", failedIn: Phase.PHASE_QUIESCING });
    const end = groupOutcome(memberCancelled, [member("101", Phase.PHASE_CANCELLED, Phase.PHASE_QUIESCING, CANCELLED_CODE), member("102", Phase.PHASE_FAILED, Phase.PHASE_QUIESCING, MEMBER_FAILED_CODE)]);
    assert.equal(end.cancelled, false);
  });
});
