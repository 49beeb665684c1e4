// The backup job state machine: a pure function (job, event, now) → { job, effects }.
// The ledger (ledger/ledger.ts) persists the new job, the events in `effects` and the restore
// point a `done` job leaves, in one transaction, then publishes them; nothing else changes a job.
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
// also after the job ended (the fallback resume happens at the end). A stack that runs again
// before the copy exists (before `snapshotted`, or while mode none archives live data) leaves the
// job crash-consistent at best, with a note naming the stack.
import { Consistency, EventKind, Phase, SnapshotMode, StackState, type StackStatus } from "@lull/proto";
import { LullError, isTerminal, modeName, phaseName, type ErrorCode } from "@lull/shared";
import { locationKindOf, pointIdOf, type RestorePoint } from "../backups/restore-point.js";
import type { Effect as LedgerEffect } from "../ledger/ledger.js";
import { leavePhase, type PhaseDurations } from "../ledger/phase-time.js";
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
  | { type: "done"; archivePath: string; archiveBytes: number; sha256?: string; manifest?: { fileCount: number; totalBytes: number } }
  | { type: "found-archive"; archivePath: string; archiveBytes: number; message: string }
  | { type: "fail"; code: ErrorCode; message: string }
  | { type: "cancel"; reason: string }
  | { type: "stack-resumed"; stack: string; downtimeMs: number; early: boolean; at: number; postStep?: string | undefined };

export type JobEventType = JobEvent["type"];

/** A backup's durable effect beyond its row and events: the restore point a `done` job leaves. */
export type RestorePointEffect = { type: "restore-point"; point: RestorePoint };

export type Effect = LedgerEffect<RestorePointEffect>;

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

/** What the time in each phase counts toward: a job's archive time starts at `archiving`. */
const DURATIONS: PhaseDurations = {
  [P.PHASE_QUIESCING]: "quiesceMs",
  [P.PHASE_SNAPSHOTTING]: "snapshotMs",
  [P.PHASE_ARCHIVING]: "archiveMs",
};

function phaseChange(job: JobRecord, to: Phase, now: number, fields: Partial<EventDraft> = {}, patch: Partial<JobRecord> = {}): Transition {
  const next = { ...leavePhase(job, to, now, DURATIONS), ...patch };
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

/**
 * The copy this job archives does not exist yet: the barrier's phases, `snapshotting`, and
 * `archiving` without any copy (mode none reads the live data). A point-in-time copy exists from
 * `snapshotted` on; suspend and stop mode make theirs with the guest suspended or stopped.
 */
function beforeCopy(job: JobRecord): boolean {
  if (isTerminal(job.phase)) return false;
  if (job.phase === P.PHASE_QUIESCING || job.phase === P.PHASE_SNAPSHOTTING) return true;
  return job.phase === P.PHASE_ARCHIVING && job.mode === SnapshotMode.SNAPSHOT_MODE_NONE;
}

/**
 * A stack ran again before the copy existed (its controller's resume deadline passed during a slow
 * snapshot): the backup is crash-consistent at best. A barrier already ended APP is downgraded,
 * with a note naming the stack; a barrier still open can no longer end APP (see endBarrier).
 */
function ranAgainBeforeCopy(step: Transition, stack: string, now: number): Transition {
  const job = step.job;
  if (job.consistency !== Consistency.CONSISTENCY_APP) return step;
  const next: JobRecord = { ...job, consistency: Consistency.CONSISTENCY_CRASH, updatedAt: new Date(now) };
  const message = `stack ${stack} ran again while the job was ${phaseName(job.phase)}, before its copy existed (its controller stopped waiting): crash-consistent at best`;
  return { job: next, effects: [...step.effects, { type: "emit", event: eventFor(next, EventKind.EVENT_KIND_NOTE, { message }) }] };
}

type StackEvent = Extract<JobEvent, { type: "stack-acknowledged" | "stack-refused" | "stack-resumed" }>;

function stackTransition(job: JobRecord, event: StackEvent, now: number): Transition {
  const stack = findStack(job, event.stack);
  if (event.type === "stack-resumed") {
    if (job.phase === P.PHASE_QUEUED) throw wrongPhase(job, event);
    if (stack.state === StackState.STACK_STATE_RESUMED) return unchanged(job);
    const step = withStack(
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
    return beforeCopy(job) ? ranAgainBeforeCopy(step, event.stack, now) : step;
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
  // A stack that already runs again was not quiet when the copy was taken: never APP.
  const resumed = job.stacks.filter((s) => s.state === StackState.STACK_STATE_RESUMED).map((s) => s.stack);
  const downgraded = event.consistency === Consistency.CONSISTENCY_APP && resumed.length > 0;
  const consistency = downgraded ? Consistency.CONSISTENCY_CRASH : event.consistency;
  let next: JobRecord = { ...job, consistency, updatedAt: new Date(now) };
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
  const message = downgraded
    ? `stack ${resumed.join(", ")} ran again before the copy existed (its controller stopped waiting): crash-consistent at best`
    : (event.note ?? (event.consistency === Consistency.CONSISTENCY_APP ? "every stack quiesced" : "quiesce barrier ended"));
  effects.push({ type: "emit", event: eventFor(next, EventKind.EVENT_KIND_NOTE, { message }) });
  return { job: next, effects };
}

/** The restore point a job that ended `done` leaves. */
function restorePointOf(job: JobRecord, written: { sha256?: string | undefined; manifest?: RestorePoint["manifest"] }): RestorePoint {
  return {
    id: pointIdOf(job.id),
    jobId: job.id,
    guestId: job.guestId,
    groupRunId: job.groupRunId ?? "",
    engine: job.engine,
    mode: job.mode,
    consistency: job.consistency,
    snapshotAt: job.snapshotAt,
    createdAt: job.finishedAt ?? job.phaseSince,
    locationKind: locationKindOf(job.engine, job.archivePath),
    location: job.archivePath,
    sizeBytes: job.archiveBytes,
    stacks: job.stacks.map((s) => ({ stack: s.stack, state: s.state })),
    protected: false,
    notes: "",
    origin: "lull",
    sha256: written.sha256 ?? "",
    manifest: written.manifest,
    integrity: undefined,
  };
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
    case "done": {
      if (job.phase !== P.PHASE_ARCHIVING) throw wrongPhase(job, event);
      if (!event.archivePath) throw new LullError("LULL_E_INTERNAL", `job ${job.id} cannot end done without the location of its backup`);
      const step = phaseChange(job, P.PHASE_DONE, now, {}, { archivePath: event.archivePath, archiveBytes: event.archiveBytes });
      // A restore in place wrote the guest's volumes from a point (archivePath names it): no new point.
      if (job.kind === "restore") return step;
      return { job: step.job, effects: [...step.effects, { type: "restore-point", point: restorePointOf(step.job, event) }] };
    }
    case "found-archive":
      // Start-up recovery found this job's archive complete on disk: it is recorded on the job
      // (which recovery then fails), never made a restore point, since the job was not confirmed.
    {
      const next: JobRecord = { ...job, archivePath: event.archivePath, archiveBytes: event.archiveBytes, updatedAt: new Date(now) };
      return { job: next, effects: [{ type: "emit", event: eventFor(next, EventKind.EVENT_KIND_NOTE, { message: event.message }) }] };
    }
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
