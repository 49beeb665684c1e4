// Table test of the job state machine: every phase × every event, legal ones change state,
// illegal ones are rejected with a stable code.
import { strict as assert } from "node:assert";
import { describe, it } from "node:test";
import { Consistency, EventKind, Phase, QuiescePolicy, SnapshotMode, StackState } from "@lull/proto";
import { LullError, phaseName } from "@lull/shared";
import { newJobRecord, type JobRecord } from "./job.js";
import { transition, type JobEvent, type JobEventType } from "./machine.js";
import { evaluateBarrier } from "./barrier.js";

const T0 = Date.parse("2026-11-22T10:00:00Z");
const M = SnapshotMode;

function jobIn(phase: Phase, patch: Partial<JobRecord> = {}): JobRecord {
  const base = newJobRecord({
    id: "j-0000000000aaaaaaaaaaaaaaaa",
    guestId: "demo",
    engine: "native",
    policy: QuiescePolicy.QUIESCE_POLICY_FAIL,
    idempotencyKey: "k1",
    quiesceTimeoutMs: 1000,
    requestedBy: "test",
    now: T0,
  });
  const barrierDone = phase !== Phase.PHASE_QUEUED && phase !== Phase.PHASE_QUIESCING;
  return {
    ...base,
    phase,
    consistency: barrierDone ? Consistency.CONSISTENCY_APP : Consistency.CONSISTENCY_UNSPECIFIED,
    mode: barrierDone && phase !== Phase.PHASE_SNAPSHOTTING ? M.SNAPSHOT_MODE_SNAPSHOT : base.mode,
    stacks: [
      { stack: "web", state: StackState.STACK_STATE_PENDING, reason: "", downtimeMs: 0, resumedEarly: false, acknowledgedAt: undefined, resumedAt: undefined },
    ],
    ...patch,
  };
}

/** One representative event of each type. */
const EVENTS: Record<JobEventType, JobEvent> = {
  "start-quiesce": { type: "start-quiesce", stacks: ["web"] },
  "stack-acknowledged": { type: "stack-acknowledged", stack: "web", at: T0 + 5 },
  "stack-refused": { type: "stack-refused", stack: "web", reason: "busy" },
  "barrier-ended": { type: "barrier-ended", consistency: Consistency.CONSISTENCY_APP, timedOut: false },
  "skip-quiesce": { type: "skip-quiesce", reason: "guest 101 is not running" },
  snapshotting: { type: "snapshotting", mode: M.SNAPSHOT_MODE_SNAPSHOT },
  snapshotted: { type: "snapshotted", mode: M.SNAPSHOT_MODE_SNAPSHOT, snapshotAt: T0 + 10 },
  archiving: { type: "archiving", mode: M.SNAPSHOT_MODE_SNAPSHOT, bytesTotal: 100 },
  progress: { type: "progress", bytesDone: 50, bytesTotal: 100 },
  note: { type: "note", message: "hello" },
  done: { type: "done", archivePath: "/a/x.tar.zst", archiveBytes: 42 },
  "found-archive": { type: "found-archive", archivePath: "/a/x.tar.zst", archiveBytes: 42, message: "archive found" },
  fail: { type: "fail", code: "LULL_E_SNAPSHOT_FAILED", message: "boom" },
  cancel: { type: "cancel", reason: "operator" },
  "stack-resumed": { type: "stack-resumed", stack: "web", downtimeMs: 1234, early: true, at: T0 + 20 },
};

const P = Phase;
const NON_TERMINAL = [P.PHASE_QUEUED, P.PHASE_QUIESCING, P.PHASE_SNAPSHOTTING, P.PHASE_SNAPSHOTTED, P.PHASE_ARCHIVING];
const TERMINAL = [P.PHASE_DONE, P.PHASE_FAILED, P.PHASE_CANCELLED];

/** Phase after the event, for every legal (phase, event); everything not listed is illegal. */
const LEGAL: Partial<Record<Phase, Partial<Record<JobEventType, Phase>>>> = {
  [P.PHASE_QUEUED]: { "start-quiesce": P.PHASE_QUIESCING, "skip-quiesce": P.PHASE_QUEUED, note: P.PHASE_QUEUED },
  [P.PHASE_QUIESCING]: {
    "stack-acknowledged": P.PHASE_QUIESCING,
    "stack-refused": P.PHASE_QUIESCING,
    "barrier-ended": P.PHASE_QUIESCING,
    note: P.PHASE_QUIESCING,
    "stack-resumed": P.PHASE_QUIESCING,
  },
  [P.PHASE_SNAPSHOTTING]: { snapshotted: P.PHASE_SNAPSHOTTED, note: P.PHASE_SNAPSHOTTING, "stack-resumed": P.PHASE_SNAPSHOTTING },
  [P.PHASE_SNAPSHOTTED]: { archiving: P.PHASE_ARCHIVING, note: P.PHASE_SNAPSHOTTED, "stack-resumed": P.PHASE_SNAPSHOTTED },
  [P.PHASE_ARCHIVING]: { progress: P.PHASE_ARCHIVING, done: P.PHASE_DONE, note: P.PHASE_ARCHIVING, "stack-resumed": P.PHASE_ARCHIVING },
  [P.PHASE_DONE]: { "stack-resumed": P.PHASE_DONE },
  [P.PHASE_FAILED]: { "stack-resumed": P.PHASE_FAILED },
  [P.PHASE_CANCELLED]: { "stack-resumed": P.PHASE_CANCELLED },
};
for (const phase of NON_TERMINAL) {
  LEGAL[phase] = { ...LEGAL[phase], fail: P.PHASE_FAILED, cancel: P.PHASE_CANCELLED, "found-archive": phase };
}

function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof LullError, `expected a LullError, got ${String(err)}`);
    return err.code;
  }
  return "(no error)";
}

describe("job state machine: every phase × every event", () => {
  for (const phase of [...NON_TERMINAL, ...TERMINAL]) {
    for (const [type, event] of Object.entries(EVENTS) as Array<[JobEventType, JobEvent]>) {
      const expected = LEGAL[phase]?.[type];
      const title = `${phaseName(phase)} × ${type} → ${expected !== undefined ? phaseName(expected) : "rejected"}`;
      it(title, () => {
        const job = jobIn(phase);
        if (expected !== undefined) {
          const { job: next, effects } = transition(job, event, T0 + 100);
          assert.equal(next.phase, expected);
          assert.ok(effects.length > 0, "a legal event produces at least one event to persist");
          for (const e of effects) if (e.type === "emit") assert.equal(e.event.jobId, job.id);
        } else {
          const want = TERMINAL.includes(phase) ? "LULL_E_JOB_TERMINAL" : "LULL_E_WRONG_PHASE";
          assert.equal(codeOf(() => transition(job, event, T0 + 100)), want);
        }
      });
    }
  }
});

describe("job state machine: what transitions record", () => {
  it("a failure records the phase it failed in, the code and the message, and a PHASE event carrying them", () => {
    const { job, effects } = transition(jobIn(P.PHASE_SNAPSHOTTING), EVENTS.fail, T0 + 500);
    assert.equal(job.phase, P.PHASE_FAILED);
    assert.equal(job.failedIn, P.PHASE_SNAPSHOTTING);
    assert.equal(job.errorCode, "LULL_E_SNAPSHOT_FAILED");
    assert.equal(job.errorMessage, "boom");
    assert.equal(job.totalMs, 500);
    assert.deepEqual(job.finishedAt, new Date(T0 + 500));
    const emitted = effects.flatMap((e) => (e.type === "emit" ? [e.event] : []));
    assert.equal(emitted[0]?.kind, EventKind.EVENT_KIND_PHASE);
    assert.equal(emitted[0]?.phase, P.PHASE_FAILED);
    assert.equal(emitted[0]?.errorCode, "LULL_E_SNAPSHOT_FAILED");
    assert.ok(effects.some((e) => e.type === "phase-changed" && e.from === P.PHASE_SNAPSHOTTING && e.to === P.PHASE_FAILED));
  });

  it("snapshotted carries the actual mode and the snapshot's time, in the job and its event", () => {
    const { job, effects } = transition(jobIn(P.PHASE_SNAPSHOTTING, { mode: M.SNAPSHOT_MODE_COPY }), { type: "snapshotted", mode: M.SNAPSHOT_MODE_COPY, snapshotAt: T0 + 7 }, T0 + 9);
    assert.equal(job.mode, M.SNAPSHOT_MODE_COPY);
    assert.deepEqual(job.snapshotAt, new Date(T0 + 7));
    const ev = effects.find((e) => e.type === "emit");
    assert.ok(ev && ev.type === "emit");
    assert.equal(ev.event.mode, M.SNAPSHOT_MODE_COPY);
    assert.deepEqual(ev.event.snapshotAt, new Date(T0 + 7));
  });

  it("a stack acknowledged as already stopped is LEFT_STOPPED, says so, and counts as quiesced at the barrier", () => {
    const q = jobIn(P.PHASE_QUIESCING, {
      stacks: [
        { stack: "db", state: StackState.STACK_STATE_PENDING, reason: "", downtimeMs: 0, resumedEarly: false, acknowledgedAt: undefined, resumedAt: undefined },
        { stack: "web", state: StackState.STACK_STATE_PENDING, reason: "", downtimeMs: 0, resumedEarly: false, acknowledgedAt: undefined, resumedAt: undefined },
      ],
    });
    const left = transition(q, { type: "stack-acknowledged", stack: "web", at: T0 + 5, alreadyStopped: true }, T0 + 6).job;
    const web = left.stacks.find((s) => s.stack === "web");
    assert.equal(web?.state, StackState.STACK_STATE_LEFT_STOPPED);
    assert.match(web?.reason ?? "", /already stopped when the backup began: left stopped/);
    assert.equal(evaluateBarrier(left.stacks), undefined, "db has not answered yet");
    assert.equal(transition(left, { type: "stack-acknowledged", stack: "web", at: T0 + 7, alreadyStopped: true }, T0 + 8).job, left, "idempotent");
    const both = transition(left, { type: "stack-acknowledged", stack: "db", at: T0 + 9 }, T0 + 10).job;
    assert.deepEqual(evaluateBarrier(both.stacks), { kind: "all-quiesced" });
  });

  it("snapshotted without a point-in-time mode is rejected", () => {
    for (const mode of [M.SNAPSHOT_MODE_NONE, M.SNAPSHOT_MODE_SUSPEND, M.SNAPSHOT_MODE_STOP]) {
      assert.equal(codeOf(() => transition(jobIn(P.PHASE_SNAPSHOTTING), { type: "snapshotted", mode, snapshotAt: T0 }, T0)), "LULL_E_WRONG_PHASE");
    }
  });

  it("snapshot none: quiescing → archiving directly, with no snapshotted; a point-in-time mode may not skip snapshotted", () => {
    const q = jobIn(P.PHASE_QUIESCING, { consistency: Consistency.CONSISTENCY_APP });
    const { job } = transition(q, { type: "archiving", mode: M.SNAPSHOT_MODE_NONE, bytesTotal: 10 }, T0 + 300);
    assert.equal(job.phase, P.PHASE_ARCHIVING);
    assert.equal(job.mode, M.SNAPSHOT_MODE_NONE);
    assert.equal(job.quiesceMs, 300);
    assert.equal(codeOf(() => transition(q, { type: "archiving", mode: M.SNAPSHOT_MODE_SNAPSHOT, bytesTotal: 10 }, T0)), "LULL_E_WRONG_PHASE");
    const s = jobIn(P.PHASE_SNAPSHOTTING);
    assert.equal(transition(s, { type: "archiving", mode: M.SNAPSHOT_MODE_SUSPEND, bytesTotal: 1 }, T0).job.phase, P.PHASE_ARCHIVING);
    assert.equal(codeOf(() => transition(s, { type: "archiving", mode: M.SNAPSHOT_MODE_COPY, bytesTotal: 1 }, T0)), "LULL_E_WRONG_PHASE");
  });

  it("skip-quiesce (a guest that is not running): CRASH with the reason, then queued → snapshotting or archiving, never snapshotted", () => {
    const queued = jobIn(P.PHASE_QUEUED, { stacks: [] });
    assert.equal(codeOf(() => transition(queued, EVENTS.snapshotting, T0)), "LULL_E_WRONG_PHASE", "not without skip-quiesce");
    assert.equal(codeOf(() => transition(queued, { type: "archiving", mode: M.SNAPSHOT_MODE_STOP, bytesTotal: 0 }, T0)), "LULL_E_WRONG_PHASE");
    const { job: skipped, effects } = transition(queued, EVENTS["skip-quiesce"], T0 + 1);
    assert.equal(skipped.phase, P.PHASE_QUEUED);
    assert.equal(skipped.consistency, Consistency.CONSISTENCY_CRASH);
    const note = effects.find((e) => e.type === "emit");
    assert.ok(note?.type === "emit" && note.event.kind === EventKind.EVENT_KIND_NOTE);
    assert.equal(note.event.message, "nothing quiesced: guest 101 is not running");
    assert.equal(codeOf(() => transition(skipped, EVENTS["skip-quiesce"], T0)), "LULL_E_WRONG_PHASE", "only once");
    assert.equal(codeOf(() => transition(skipped, EVENTS["start-quiesce"], T0)), "LULL_E_WRONG_PHASE", "no barrier after skipping it");
    const snapshotting = transition(skipped, { type: "snapshotting", mode: M.SNAPSHOT_MODE_STOP }, T0 + 2).job;
    assert.equal(snapshotting.phase, P.PHASE_SNAPSHOTTING);
    assert.equal(transition(snapshotting, { type: "archiving", mode: M.SNAPSHOT_MODE_STOP, bytesTotal: 0 }, T0 + 3).job.phase, P.PHASE_ARCHIVING);
    assert.equal(transition(skipped, { type: "archiving", mode: M.SNAPSHOT_MODE_STOP, bytesTotal: 0 }, T0 + 2).job.phase, P.PHASE_ARCHIVING);
    assert.equal(codeOf(() => transition(skipped, { type: "archiving", mode: M.SNAPSHOT_MODE_SNAPSHOT, bytesTotal: 0 }, T0)), "LULL_E_WRONG_PHASE");
    assert.equal(codeOf(() => transition(skipped, EVENTS.snapshotted, T0)), "LULL_E_WRONG_PHASE");
  });

  it("the job cannot leave quiescing before the barrier ended", () => {
    const q = jobIn(P.PHASE_QUIESCING);
    assert.equal(codeOf(() => transition(q, EVENTS.snapshotting, T0)), "LULL_E_WRONG_PHASE");
    assert.equal(codeOf(() => transition(q, { type: "archiving", mode: M.SNAPSHOT_MODE_NONE, bytesTotal: 0 }, T0)), "LULL_E_WRONG_PHASE");
    const ended = transition(q, EVENTS["barrier-ended"], T0).job;
    assert.equal(transition(ended, EVENTS.snapshotting, T0).job.phase, P.PHASE_SNAPSHOTTING);
  });

  it("start-quiesce fixes the barrier's stacks as PENDING; ack, refuse and timeout change them", () => {
    const q = transition(jobIn(P.PHASE_QUEUED, { stacks: [] }), { type: "start-quiesce", stacks: ["db", "web", "db"] }, T0).job;
    assert.deepEqual(q.stacks.map((s) => [s.stack, s.state]), [["db", StackState.STACK_STATE_PENDING], ["web", StackState.STACK_STATE_PENDING]]);
    const acked = transition(q, { type: "stack-acknowledged", stack: "db", at: T0 + 3 }, T0 + 4).job;
    assert.equal(acked.stacks[0]?.state, StackState.STACK_STATE_QUIESCED);
    assert.deepEqual(acked.stacks[0]?.acknowledgedAt, new Date(T0 + 3));
    assert.equal(transition(acked, { type: "stack-acknowledged", stack: "db", at: T0 + 9 }, T0 + 9).effects.length, 0, "a repeated ack is a no-op");
    assert.equal(codeOf(() => transition(acked, { type: "stack-acknowledged", stack: "nope", at: T0 }, T0)), "LULL_E_STACK_NOT_REGISTERED");
    const timedOut = transition(acked, { type: "barrier-ended", consistency: Consistency.CONSISTENCY_CRASH, timedOut: true, note: "n" }, T0 + 5).job;
    assert.equal(timedOut.stacks[1]?.state, StackState.STACK_STATE_TIMED_OUT);
    assert.equal(timedOut.consistency, Consistency.CONSISTENCY_CRASH);
    assert.equal(codeOf(() => transition(timedOut, { type: "stack-acknowledged", stack: "web", at: T0 }, T0)), "LULL_E_WRONG_PHASE");
  });

  it("a barrier that ends on a refusal leaves no stack PENDING: the unanswered ones are NOT_ANSWERED", () => {
    const q = transition(jobIn(P.PHASE_QUEUED, { stacks: [] }), { type: "start-quiesce", stacks: ["db", "web", "log"] }, T0).job;
    const refused = transition(q, { type: "stack-refused", stack: "web", reason: "busy" }, T0 + 1).job;
    const ended = transition(refused, { type: "barrier-ended", consistency: Consistency.CONSISTENCY_CRASH, timedOut: false, note: "n" }, T0 + 2).job;
    assert.deepEqual(
      ended.stacks.map((s) => [s.stack, s.state]),
      [["db", StackState.STACK_STATE_NOT_ANSWERED], ["log", StackState.STACK_STATE_NOT_ANSWERED], ["web", StackState.STACK_STATE_REFUSED]],
    );
    assert.equal(ended.stacks[2]?.reason, "busy", "the refusal keeps its reason");
    assert.equal(codeOf(() => transition(ended, { type: "stack-acknowledged", stack: "db", at: T0 + 3 }, T0 + 3)), "LULL_E_WRONG_PHASE");
  });

  it("durations: each phase's time is added when it is left; the total at the end", () => {
    let job = jobIn(P.PHASE_QUEUED, { stacks: [] });
    const step = (e: JobEvent, at: number) => (job = transition(job, e, T0 + at).job);
    step({ type: "start-quiesce", stacks: [] }, 10);
    step({ type: "barrier-ended", consistency: Consistency.CONSISTENCY_CRASH, timedOut: false }, 20);
    step({ type: "snapshotting", mode: M.SNAPSHOT_MODE_SNAPSHOT }, 110);
    step({ type: "snapshotted", mode: M.SNAPSHOT_MODE_SNAPSHOT, snapshotAt: T0 + 150 }, 160);
    step({ type: "archiving", mode: M.SNAPSHOT_MODE_SNAPSHOT, bytesTotal: 9 }, 170);
    step({ type: "done", archivePath: "/x", archiveBytes: 9 }, 1170);
    assert.deepEqual([job.quiesceMs, job.snapshotMs, job.archiveMs, job.totalMs], [100, 50, 1000, 1170]);
  });

  it("a stack that ran again before snapshotted leaves the job crash-consistent, with a note naming the stack", () => {
    const { job, effects } = transition(jobIn(P.PHASE_SNAPSHOTTING), EVENTS["stack-resumed"], T0 + 30);
    assert.equal(job.phase, P.PHASE_SNAPSHOTTING);
    assert.equal(job.consistency, Consistency.CONSISTENCY_CRASH);
    assert.equal(job.stacks[0]?.state, StackState.STACK_STATE_RESUMED);
    const notes = effects.flatMap((e) => (e.type === "emit" && e.event.kind === EventKind.EVENT_KIND_NOTE ? [e.event] : []));
    assert.equal(notes.length, 1);
    assert.match(notes[0]?.message ?? "", /stack web ran again while the job was snapshotting, before its copy existed.*crash-consistent at best/);
    assert.equal(notes[0]?.consistency, Consistency.CONSISTENCY_CRASH);
    // The copy of a job that reached done this way is recorded crash-consistent too.
    let after = transition(job, EVENTS.snapshotted, T0 + 40).job;
    after = transition(after, EVENTS.archiving, T0 + 41).job;
    const done = transition(after, EVENTS.done, T0 + 50);
    assert.equal(done.job.consistency, Consistency.CONSISTENCY_CRASH);
    const point = done.effects.find((e) => e.type === "restore-point");
    assert.ok(point?.type === "restore-point" && point.point.consistency === Consistency.CONSISTENCY_CRASH);
  });

  it("a resume after the barrier ended but before snapshotting, or while mode none archives live data, downgrades too", () => {
    const ended = transition(jobIn(P.PHASE_QUIESCING, { stacks: [{ ...jobIn(P.PHASE_QUIESCING).stacks[0]!, state: StackState.STACK_STATE_QUIESCED }] }), EVENTS["barrier-ended"], T0 + 1).job;
    assert.equal(ended.consistency, Consistency.CONSISTENCY_APP);
    assert.equal(transition(ended, EVENTS["stack-resumed"], T0 + 2).job.consistency, Consistency.CONSISTENCY_CRASH);
    const live = jobIn(P.PHASE_ARCHIVING, { mode: M.SNAPSHOT_MODE_NONE });
    assert.equal(transition(live, EVENTS["stack-resumed"], T0 + 2).job.consistency, Consistency.CONSISTENCY_CRASH);
  });

  it("a resume once the copy exists (snapshotted, archiving a snapshot, suspend/stop archiving, ended) keeps APP and adds no note", () => {
    const cases: Array<[Phase, SnapshotMode]> = [
      [P.PHASE_SNAPSHOTTED, M.SNAPSHOT_MODE_SNAPSHOT],
      [P.PHASE_ARCHIVING, M.SNAPSHOT_MODE_COPY],
      [P.PHASE_ARCHIVING, M.SNAPSHOT_MODE_SUSPEND],
      [P.PHASE_ARCHIVING, M.SNAPSHOT_MODE_STOP],
      [P.PHASE_DONE, M.SNAPSHOT_MODE_SNAPSHOT],
    ];
    for (const [phase, mode] of cases) {
      const { job, effects } = transition(jobIn(phase, { mode }), EVENTS["stack-resumed"], T0 + 30);
      assert.equal(job.consistency, Consistency.CONSISTENCY_APP, `${phaseName(phase)} ${mode}`);
      assert.ok(!effects.some((e) => e.type === "emit" && e.event.kind === EventKind.EVENT_KIND_NOTE));
    }
  });

  it("a barrier cannot end APP while one of its stacks already runs again", () => {
    const q = jobIn(P.PHASE_QUIESCING);
    const resumed = transition(q, EVENTS["stack-resumed"], T0 + 1).job;
    assert.equal(resumed.consistency, Consistency.CONSISTENCY_UNSPECIFIED);
    const { job, effects } = transition(resumed, EVENTS["barrier-ended"], T0 + 2);
    assert.equal(job.consistency, Consistency.CONSISTENCY_CRASH);
    const note = effects.find((e) => e.type === "emit" && e.event.kind === EventKind.EVENT_KIND_NOTE);
    assert.ok(note?.type === "emit");
    assert.match(note.event.message, /stack web ran again before the copy existed/);
  });

  it("a stack may report resumption after the job ended", () => {
    const { job, effects } = transition(jobIn(P.PHASE_DONE), EVENTS["stack-resumed"], T0 + 30);
    assert.equal(job.stacks[0]?.state, StackState.STACK_STATE_RESUMED);
    assert.equal(job.stacks[0]?.downtimeMs, 1234);
    assert.equal(job.stacks[0]?.resumedEarly, true);
    const ev = effects.find((e) => e.type === "emit");
    assert.ok(ev?.type === "emit" && ev.event.kind === EventKind.EVENT_KIND_STACK && ev.event.downtimeMs === 1234);
  });
});
