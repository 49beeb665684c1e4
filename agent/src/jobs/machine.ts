// The job state machine: a pure function (job, event, now) → { job, effects }.
// The ledger persists the new job and the events in `effects` in one transaction,
// then publishes them; nothing else changes a job.
//
//   queued ─▶ quiescing ─▶ snapshotting ─▶ snapshotted ─▶ archiving ─▶ done
//     │           │              │                           ▲
//     │           │              └── (no point-in-time copy:  │
//     │           │                   suspend/stop) ──────────┤
//     │           └── (mode none/suspend/stop) ───────────────┤
//     └── skip-quiesce (nothing to quiesce: a guest that is   │
//         not running) ─▶ snapshotting / archiving ───────────┘
//
//   any non-terminal phase ─▶ failed (failed_in = that phase, code, message)
//   any non-terminal phase ─▶ cancelled (failed_in = that phase, LULL_E_CANCELLED, reason)
//
// Inside `quiescing` the barrier runs: `start-quiesce` fixes the set of stacks (PENDING);
// acknowledgements and refusals change one stack each; `barrier-ended` records the
// consistency (APP or CRASH) and marks stacks still pending as TIMED_OUT when it timed out, else
// NOT_ANSWERED (the barrier ended on another stack's refusal).
// `skip-quiesce` closes the barrier without one (the engine has nothing to quiesce — vzdump on a
// guest that is not running calls no pre-stop hook): consistency CRASH, since Lull quiesced
// nothing, and a NOTE that says why; the job then leaves `queued` straight for snapshotting or
// archiving. The job leaves `quiescing` only after the barrier ended. `snapshotted` is reached only
// with a point-in-time mode (SNAPSHOT or COPY), and archiving a point-in-time copy only
// after `snapshotted`. A stack may report that it resumed in any phase after `queued`,
// also after the job ended (the fallback resume happens at the end).
import { Consistency, EventKind, Phase, SnapshotMode, StackState, type StackStatus } from "@lull/proto";
import { LullError, isTerminal, modeName, phaseName, type ErrorCode } from "@lull/shared";
import { eventFor, type EventDraft, type JobRecord } from "./job.js";

export type JobEvent =
  | { type: "start-quiesce"; stacks: readonly string[] }
  | { type: "stack-acknowledged"; stack: string; at: number; alreadyStopped?: boolean | undefined }
  | { type: "stack-refused"; stack: string; reason: string }
  | { type: "barrier-ended"; consistency: Consistency; timedOut: boolean; note?: string }
  | { type: "skip-quiesce"; reason: string }
  | { type: "snapshotting"; mode: SnapshotMode }
  | { type: "snapshotted"; mode: SnapshotMode; snapshotAt: number }
  | { type: "archiving"; mode: SnapshotMode; bytesTotal: number }
  | { type: "progress"; bytesDone: number; bytesTotal: number }
  | { type: "note"; message: string }
  | { type: "done"; archivePath: string; archiveBytes: number }
  | { type: "fail"; code: ErrorCode; message: string }
  | { type: "cancel"; reason: string }
  | { type: "stack-resumed"; stack: string; downtimeMs: number; early: boolean; at: number; postStep?: string | undefined };

export type JobEventType = JobEvent["type"];

export type Effect = { type: "emit"; event: EventDraft } | { type: "phase-changed"; from: Phase; to: Phase };

export interface Transition {
  job: JobRecord;
  effects: Effect[];
}

/** Modes that produce a point-in-time copy, after which stacks may resume. */
export function isPointInTime(mode: SnapshotMode): boolean {
  return mode === SnapshotMode.SNAPSHOT_MODE_SNAPSHOT || mode === SnapshotMode.SNAPSHOT_MODE_COPY;
}

const P = Phase;

function wrongPhase(job: JobRecord, event: JobEvent, why = ""): LullError {
  const detail = why ? `: ${why}` : "";
  return new LullError("LULL_E_WRONG_PHASE", `job ${job.id} cannot take ${event.type} while ${phaseName(job.phase)}${detail}`);
}

/** Adds the time spent in the phase being left to that phase's duration. */
function leavePhase(job: JobRecord, to: Phase, now: number): JobRecord {
  const spent = Math.max(0, now - job.phaseSince.getTime());
  const next: JobRecord = { ...job, phase: to, phaseSince: new Date(now), updatedAt: new Date(now) };
  if (job.phase === P.PHASE_QUIESCING) next.quiesceMs += spent;
  if (job.phase === P.PHASE_SNAPSHOTTING) next.snapshotMs += spent;
  if (job.phase === P.PHASE_ARCHIVING) next.archiveMs += spent;
  if (isTerminal(to)) {
    next.finishedAt = new Date(now);
    next.totalMs = Math.max(0, now - (job.createdAt?.getTime() ?? now));
  }
  return next;
}

function phaseChange(job: JobRecord, to: Phase, now: number, fields: Partial<EventDraft> = {}, patch: Partial<JobRecord> = {}): Transition {
  const next = { ...leavePhase(job, to, now), ...patch };
  return {
    job: next,
    effects: [
      { type: "phase-changed", from: job.phase, to },
      { type: "emit", event: eventFor(next, EventKind.EVENT_KIND_PHASE, fields) },
    ],
  };
}

function findStack(job: JobRecord, name: string): StackStatus {
  const stack = job.stacks.find((s) => s.stack === name);
  if (!stack) throw new LullError("LULL_E_STACK_NOT_REGISTERED", `stack ${name} is not part of job ${job.id}`);
  return stack;
}

function withStack(job: JobRecord, name: string, patch: Partial<StackStatus>, now: number): Transition {
  const stacks = job.stacks.map((s) => (s.stack === name ? { ...s, ...patch } : s));
  const next: JobRecord = { ...job, stacks, updatedAt: new Date(now) };
  const stack = stacks.find((s) => s.stack === name) as StackStatus;
  const event = eventFor(next, EventKind.EVENT_KIND_STACK, {
    stack: name,
    stackState: stack.state,
    downtimeMs: stack.downtimeMs,
    message: stack.reason,
  });
  return { job: next, effects: [{ type: "emit", event }] };
}

const unchanged = (job: JobRecord): Transition => ({ job, effects: [] });

function barrierEnded(job: JobRecord): boolean {
  return job.consistency !== Consistency.CONSISTENCY_UNSPECIFIED;
}

type StackEvent = Extract<JobEvent, { type: "stack-acknowledged" | "stack-refused" | "stack-resumed" }>;

function stackTransition(job: JobRecord, event: StackEvent, now: number): Transition {
  const stack = findStack(job, event.stack);
  if (event.type === "stack-resumed") {
    if (job.phase === P.PHASE_QUEUED) throw wrongPhase(job, event);
    if (stack.state === StackState.STACK_STATE_RESUMED) return unchanged(job);
    return withStack(
      job,
      event.stack,
      {
        state: StackState.STACK_STATE_RESUMED,
        downtimeMs: event.downtimeMs,
        resumedEarly: event.early,
        resumedAt: new Date(event.at),
        ...(event.postStep ? { postStep: event.postStep } : {}),
      },
      now,
    );
  }
  if (job.phase !== P.PHASE_QUIESCING) throw wrongPhase(job, event);
  const target =
    event.type === "stack-refused"
      ? StackState.STACK_STATE_REFUSED
      : event.alreadyStopped
        ? StackState.STACK_STATE_LEFT_STOPPED
        : StackState.STACK_STATE_QUIESCED;
  if (stack.state === target) return unchanged(job);
  if (stack.state !== StackState.STACK_STATE_PENDING || barrierEnded(job)) {
    throw wrongPhase(job, event, `the quiesce barrier has ended for stack ${event.stack}`);
  }
  if (event.type === "stack-refused") return withStack(job, event.stack, { state: target, reason: event.reason }, now);
  // A stack already stopped when the backup began is as quiet as a stopped one; nobody starts it again.
  const reason = event.alreadyStopped ? "already stopped when the backup began: left stopped" : "";
  return withStack(job, event.stack, { state: target, acknowledgedAt: new Date(event.at), reason }, now);
}

function endBarrier(job: JobRecord, event: Extract<JobEvent, { type: "barrier-ended" }>, now: number): Transition {
  if (job.phase !== P.PHASE_QUIESCING || barrierEnded(job)) throw wrongPhase(job, event);
  let next: JobRecord = { ...job, consistency: event.consistency, updatedAt: new Date(now) };
  const effects: Effect[] = [];
  // No stack stays PENDING once the barrier has ended: a finished job must not look like it still waits.
  const unanswered = event.timedOut
    ? { state: StackState.STACK_STATE_TIMED_OUT, reason: "no acknowledgement before the quiesce timeout" }
    : { state: StackState.STACK_STATE_NOT_ANSWERED, reason: "the quiesce barrier ended before this stack answered" };
  for (const s of job.stacks.filter((x) => x.state === StackState.STACK_STATE_PENDING)) {
    const t = withStack(next, s.stack, unanswered, now);
    next = t.job;
    effects.push(...t.effects);
  }
  const message = event.note ?? (event.consistency === Consistency.CONSISTENCY_APP ? "every stack quiesced" : "quiesce barrier ended");
  effects.push({ type: "emit", event: eventFor(next, EventKind.EVENT_KIND_NOTE, { message }) });
  return { job: next, effects };
}

/** The one transition function. Throws LULL_E_JOB_TERMINAL / LULL_E_WRONG_PHASE / LULL_E_STACK_NOT_REGISTERED. */
export function transition(job: JobRecord, event: JobEvent, now: number): Transition {
  if (event.type === "stack-resumed") return stackTransition(job, event, now);
  if (isTerminal(job.phase)) {
    throw new LullError("LULL_E_JOB_TERMINAL", `job ${job.id} has already ended (${phaseName(job.phase)})`);
  }
  switch (event.type) {
    case "start-quiesce": {
      if (job.phase !== P.PHASE_QUEUED || barrierEnded(job)) throw wrongPhase(job, event);
      const stacks: StackStatus[] = [...new Set(event.stacks)].sort().map((stack) => ({
        stack,
        state: StackState.STACK_STATE_PENDING,
        reason: "",
        downtimeMs: 0,
        resumedEarly: false,
        acknowledgedAt: undefined,
        resumedAt: undefined,
      }));
      return phaseChange(job, P.PHASE_QUIESCING, now, {}, { stacks });
    }
    case "stack-acknowledged":
    case "stack-refused":
      return stackTransition(job, event, now);
    case "barrier-ended":
      return endBarrier(job, event, now);
    case "skip-quiesce": {
      if (job.phase !== P.PHASE_QUEUED || barrierEnded(job)) throw wrongPhase(job, event);
      const next: JobRecord = { ...job, consistency: Consistency.CONSISTENCY_CRASH, updatedAt: new Date(now) };
      const message = `nothing quiesced: ${event.reason}`;
      return { job: next, effects: [{ type: "emit", event: eventFor(next, EventKind.EVENT_KIND_NOTE, { message }) }] };
    }
    case "snapshotting":
      if (job.phase !== P.PHASE_QUIESCING && job.phase !== P.PHASE_QUEUED) throw wrongPhase(job, event);
      if (!barrierEnded(job)) throw wrongPhase(job, event, "the quiesce barrier has not ended");
      return phaseChange(job, P.PHASE_SNAPSHOTTING, now, {}, { mode: event.mode });
    case "snapshotted":
      if (job.phase !== P.PHASE_SNAPSHOTTING) throw wrongPhase(job, event);
      if (!isPointInTime(event.mode)) throw wrongPhase(job, event, `mode ${modeName(event.mode)} makes no point-in-time copy`);
      return phaseChange(job, P.PHASE_SNAPSHOTTED, now, {}, { mode: event.mode, snapshotAt: new Date(event.snapshotAt) });
    case "archiving": {
      const fromSnapshotted = job.phase === P.PHASE_SNAPSHOTTED;
      const beforeCopy = job.phase === P.PHASE_QUEUED || job.phase === P.PHASE_QUIESCING || job.phase === P.PHASE_SNAPSHOTTING;
      const withoutCopy = beforeCopy && !isPointInTime(event.mode);
      if (!fromSnapshotted && !withoutCopy) {
        throw wrongPhase(job, event, `mode ${modeName(event.mode)} must reach snapshotted before archiving`);
      }
      if ((job.phase === P.PHASE_QUEUED || job.phase === P.PHASE_QUIESCING) && !barrierEnded(job)) {
        throw wrongPhase(job, event, "the quiesce barrier has not ended");
      }
      const mode = fromSnapshotted ? job.mode : event.mode;
      return phaseChange(job, P.PHASE_ARCHIVING, now, {}, { mode, bytesTotal: event.bytesTotal, bytesDone: 0 });
    }
    case "progress": {
      if (job.phase !== P.PHASE_ARCHIVING) throw wrongPhase(job, event);
      const next: JobRecord = { ...job, bytesDone: event.bytesDone, bytesTotal: event.bytesTotal, updatedAt: new Date(now) };
      return { job: next, effects: [{ type: "emit", event: eventFor(next, EventKind.EVENT_KIND_PROGRESS) }] };
    }
    case "note":
      return { job, effects: [{ type: "emit", event: eventFor(job, EventKind.EVENT_KIND_NOTE, { message: event.message }) }] };
    case "done":
      if (job.phase !== P.PHASE_ARCHIVING) throw wrongPhase(job, event);
      return phaseChange(job, P.PHASE_DONE, now, {}, { archivePath: event.archivePath, archiveBytes: event.archiveBytes });
    case "fail":
      return phaseChange(
        job,
        P.PHASE_FAILED,
        now,
        { errorCode: event.code, message: event.message },
        { failedIn: job.phase, errorCode: event.code, errorMessage: event.message },
      );
    case "cancel":
      return phaseChange(
        job,
        P.PHASE_CANCELLED,
        now,
        { errorCode: "LULL_E_CANCELLED", message: event.reason },
        { failedIn: job.phase, errorCode: "LULL_E_CANCELLED", errorMessage: event.reason },
      );
  }
}
