// What the controller should do, decided from real state only: the marker on disk, the job as the
// agent reports it now, and the clock. Pure functions; ./reconcile.ts performs what they return.
//
// With a marker (this controller stopped the stack, or may have, for `marker.jobId`):
//
//   resume point passed (whatever the agent says)        → resume (deadline)
//     (the marker's resumeAt: the deadline minus the lead the start needs, ./resume-lead.ts)
//   agent unreachable, or it answered with an error      → hold   (the deadline timer still runs)
//     (LULL_E_INTERNAL, a credential it refuses, ...: an agent error is not an unknown job)
//   job unknown to the agent (LULL_E_JOB_NOT_FOUND only)  → resume (unknown-job)
//   job terminal (done | failed | cancelled)             → resume (terminal, early=false): the fallback
//   snapshot exists (snapshotted, or archiving after it) → resume (snapshotted, early=true)  [resume: early]
//                                                          hold until terminal                [resume: end]
//   quiescing, this stack PENDING                        → stop (unless already stopped) and acknowledge
//   quiescing, QUIESCED / snapshotting / archiving
//     without a snapshot (stop-mode archive in place)    → hold
//   anything else (refused, timed out, not in the barrier, queued)
//                                                        → resume (released)
//
// Without a marker, for each job of the guest that lists this stack:
//
//   quiescing, this stack PENDING → quiesce, unless another job of this stack has not ended yet
//                                   or this job was already resumed: then refuse; a stack found
//                                   already stopped for this job is acknowledged as left stopped
//   terminal and tracked          → done (log `backup done`, stop tracking)
//   otherwise, not terminal       → track it to its end
import { Phase, SnapshotMode, StackState, type Job, type StackStatus } from "@lull/proto";
import { isTerminal } from "@lull/shared";
import type { Marker } from "./marker-store.js";

export type ResumeMode = "early" | "end";

export type ResumeCause =
  | "snapshotted"
  | "terminal"
  | "deadline"
  | "unknown-job"
  | "released"
  | "stop-failed"
  | "pre-failed"
  | "restarted"
  | "shutdown"
  | "corrupt-marker";

export type JobView =
  | { kind: "found"; job: Job }
  | { kind: "not-found"; reason: string }
  | { kind: "unreachable"; reason: string }
  /** The agent answered, with an error other than LULL_E_JOB_NOT_FOUND: it may still run the job. */
  | { kind: "agent-error"; reason: string };

export type MarkerAction =
  | { action: "hold"; why: string }
  | { action: "stop-and-acknowledge" }
  | { action: "resume"; cause: ResumeCause; early: boolean };

export type JobAction =
  | { action: "ignore" }
  | { action: "quiesce" }
  | { action: "acknowledge-left-stopped" }
  | { action: "refuse"; reason: string }
  | { action: "track" }
  | { action: "done" };

const NO_SNAPSHOT_MODES: ReadonlySet<SnapshotMode> = new Set([
  SnapshotMode.SNAPSHOT_MODE_NONE,
  SnapshotMode.SNAPSHOT_MODE_SUSPEND,
  SnapshotMode.SNAPSHOT_MODE_STOP,
]);

export function stackEntry(job: Job, stack: string): StackStatus | undefined {
  return job.stacks.find((s) => s.stack === stack);
}

/** The point-in-time copy exists and the job has not ended: a stopped stack may run again. */
export function snapshotExists(job: Job): boolean {
  if (NO_SNAPSHOT_MODES.has(job.mode)) return false;
  if (job.phase === Phase.PHASE_SNAPSHOTTED) return true;
  if (job.phase !== Phase.PHASE_ARCHIVING) return false;
  return (
    job.snapshotAt !== undefined || job.mode === SnapshotMode.SNAPSHOT_MODE_SNAPSHOT || job.mode === SnapshotMode.SNAPSHOT_MODE_COPY
  );
}

export function isPendingQuiesce(job: Job, stack: string): boolean {
  return job.phase === Phase.PHASE_QUIESCING && stackEntry(job, stack)?.state === StackState.STACK_STATE_PENDING;
}

export interface MarkerInput {
  marker: Marker;
  view: JobView;
  now: number;
  /** The deadline timer fired for this marker (guards against a timer firing a hair early). */
  deadlineFired: boolean;
  resume: ResumeMode;
  stack: string;
}

/** The deadline timer fired, or the marker's resume point (deadline minus lead) has passed. */
export function deadlinePassed(marker: Marker, now: number, deadlineFired: boolean): boolean {
  return deadlineFired || now >= marker.resumeAt;
}

export function decideForMarker(input: MarkerInput): MarkerAction {
  const { marker, view, now, resume, stack } = input;
  if (deadlinePassed(marker, now, input.deadlineFired)) return { action: "resume", cause: "deadline", early: false };
  if (view.kind === "unreachable") return { action: "hold", why: `agent unreachable (${view.reason}); the resume deadline applies` };
  if (view.kind === "agent-error") return { action: "hold", why: `the agent answered with an error (${view.reason}); the resume deadline applies` };
  if (view.kind === "not-found") return { action: "resume", cause: "unknown-job", early: false };
  const job = view.job;
  if (isTerminal(job.phase)) return { action: "resume", cause: "terminal", early: false };
  if (snapshotExists(job)) {
    return resume === "early"
      ? { action: "resume", cause: "snapshotted", early: true }
      : { action: "hold", why: "resume: end — waiting for the terminal phase" };
  }
  const state = stackEntry(job, stack)?.state;
  const held = state === StackState.STACK_STATE_QUIESCED || state === StackState.STACK_STATE_PENDING;
  switch (job.phase) {
    case Phase.PHASE_QUIESCING:
      if (state === StackState.STACK_STATE_PENDING) return { action: "stop-and-acknowledge" };
      if (state === StackState.STACK_STATE_QUIESCED) return { action: "hold", why: "acknowledged; waiting for the snapshot" };
      return { action: "resume", cause: "released", early: false };
    case Phase.PHASE_SNAPSHOTTING:
    case Phase.PHASE_ARCHIVING:
      return held ? { action: "hold", why: "waiting for the snapshot or the end" } : { action: "resume", cause: "released", early: false };
    default:
      return { action: "resume", cause: "released", early: false };
  }
}

export interface JobInput {
  job: Job;
  stack: string;
  /** The job this stack took part in and that has not been seen ending yet. */
  trackedJobId: string | undefined;
  /** This stack was already resumed for the tracked job (so it must not be stopped again for it). */
  trackedResumed: boolean;
  /** The stack was found already stopped for the tracked job and is left as it is. */
  trackedLeftStopped?: boolean | undefined;
}

export function decideForJob(input: JobInput): JobAction {
  const { job, stack, trackedJobId } = input;
  const tracked = trackedJobId === job.id;
  if (isTerminal(job.phase)) return tracked ? { action: "done" } : { action: "ignore" };
  const entry = stackEntry(job, stack);
  if (entry === undefined) return { action: "ignore" };
  if (isPendingQuiesce(job, stack)) {
    if (trackedJobId !== undefined && !tracked) {
      return { action: "refuse", reason: `the previous backup ${trackedJobId} of this stack has not ended` };
    }
    if (tracked && input.trackedLeftStopped) return { action: "acknowledge-left-stopped" };
    if (tracked && input.trackedResumed) {
      return { action: "refuse", reason: "the stack was already resumed for this job; it is running" };
    }
    return { action: "quiesce" };
  }
  return tracked ? { action: "ignore" } : { action: "track" };
}
