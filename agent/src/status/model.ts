// What the status page shows, read from the job store: per job its phase segments (from the
// job's PHASE events in the event log), each stack's down interval and the snapshot instant;
// per stack its downtime over the guest's last N backups. Pure reads, no writes.
import { EventKind, Phase, StackState, type Event } from "@lull/proto";
import { isTerminal } from "@lull/shared";
import type { JobRecord } from "../jobs/job.js";
import type { JobStore } from "../jobs/store.js";

export interface PhaseSegment {
  phase: Phase;
  start: number;
  end: number;
}

export interface DownInterval {
  stack: string;
  state: StackState;
  /** Start of the interval (ms since epoch). */
  start: number;
  end: number;
  /** The downtime its controller reported; undefined while the stack is still down. */
  downtimeMs?: number | undefined;
  /** Still down at render time: the interval runs from its acknowledgement to now. */
  open: boolean;
}

export interface JobView {
  job: JobRecord;
  running: boolean;
  /** The timeline's span: creation to end (or now while running). */
  start: number;
  end: number;
  phases: PhaseSegment[];
  /** True when retention pruned the job's events, so the phase track may be incomplete. */
  phasesIncomplete: boolean;
  stacks: DownInterval[];
  snapshotAt?: number | undefined;
}

export interface DowntimePoint {
  jobId: string;
  at: number;
  downtimeMs: number;
}

export interface StackHistory {
  guestId: string;
  stack: string;
  points: DowntimePoint[];
}

/** Upper bound on the events read for one job's timeline (progress events are the bulk). */
const MAX_JOB_EVENTS = 5_000;

/** The phase segments of a job from its PHASE events; the last one runs to `end`. */
export function phaseSegments(job: JobRecord, events: readonly Event[], end: number): { phases: PhaseSegment[]; incomplete: boolean } {
  const marks: Array<{ phase: Phase; at: number }> = [];
  for (const e of events) {
    if (e.kind !== EventKind.EVENT_KIND_PHASE || e.jobId !== job.id || !e.at) continue;
    const last = marks[marks.length - 1];
    if (last && last.phase === e.phase) continue;
    marks.push({ phase: e.phase, at: e.at.getTime() });
  }
  const created = job.createdAt?.getTime() ?? marks[0]?.at ?? end;
  // The first phase (queued) is the job's creation even when its event was pruned.
  const incomplete = marks.length === 0 || (marks[0] as { phase: Phase }).phase !== Phase.PHASE_QUEUED;
  if (!incomplete) (marks[0] as { at: number }).at = Math.min(created, (marks[0] as { at: number }).at);
  else if (marks.length === 0 || (marks[0] as { at: number }).at > created) marks.unshift({ phase: Phase.PHASE_UNSPECIFIED, at: created });
  const phases: PhaseSegment[] = [];
  for (let i = 0; i < marks.length; i++) {
    const m = marks[i] as { phase: Phase; at: number };
    if (isTerminal(m.phase)) break; // an ended job's last mark is its end, not a segment
    const next = marks[i + 1];
    phases.push({ phase: m.phase, start: m.at, end: Math.max(m.at, next ? next.at : end) });
  }
  return { phases, incomplete };
}

/** Each stack's down interval: it ends at the reported resume and lasts the reported downtime. */
export function downIntervals(job: JobRecord, now: number): DownInterval[] {
  const out: DownInterval[] = [];
  for (const s of job.stacks) {
    if (s.state === StackState.STACK_STATE_RESUMED && s.resumedAt) {
      const end = s.resumedAt.getTime();
      out.push({ stack: s.stack, state: s.state, start: end - s.downtimeMs, end, downtimeMs: s.downtimeMs, open: false });
    } else if ((s.state === StackState.STACK_STATE_QUIESCED || s.state === StackState.STACK_STATE_LEFT_STOPPED) && s.acknowledgedAt) {
      const start = s.acknowledgedAt.getTime();
      const end = isTerminal(job.phase) ? (job.finishedAt?.getTime() ?? now) : now;
      out.push({ stack: s.stack, state: s.state, start, end: Math.max(start, end), open: !isTerminal(job.phase) });
    } else {
      out.push({ stack: s.stack, state: s.state, start: 0, end: 0, open: false });
    }
  }
  return out;
}

export function jobView(store: JobStore, job: JobRecord, now: number): JobView {
  const running = !isTerminal(job.phase);
  const created = job.createdAt?.getTime() ?? now;
  const end = running ? now : (job.finishedAt?.getTime() ?? job.updatedAt?.getTime() ?? now);
  const events = store.events.after({ afterSeq: 0, jobId: job.id, limit: MAX_JOB_EVENTS });
  const { phases, incomplete } = phaseSegments(job, events, end);
  const stacks = downIntervals(job, now);
  // A down interval may start before the job (a stack already stopped) or, by clock skew between
  // guest and node, end after it: the span covers every interval.
  const drawn = stacks.filter((s) => s.end > s.start);
  const start = Math.min(created, ...drawn.map((s) => s.start));
  const last = Math.max(end, ...drawn.map((s) => s.end));
  return { job, running, start, end: Math.max(last, start + 1), phases, phasesIncomplete: incomplete, stacks, snapshotAt: job.snapshotAt?.getTime() };
}

/** Each stack of a guest with its downtime in the guest's last `n` jobs that resumed it. */
export function stackHistories(store: JobStore, guestId: string, n: number): StackHistory[] {
  const jobs = store.listJobs({ guestId, limit: n }).reverse(); // oldest first
  const byStack = new Map<string, DowntimePoint[]>();
  for (const job of jobs) {
    for (const s of job.stacks) {
      if (s.state !== StackState.STACK_STATE_RESUMED) continue;
      const points = byStack.get(s.stack) ?? [];
      points.push({ jobId: job.id, at: job.createdAt?.getTime() ?? 0, downtimeMs: s.downtimeMs });
      byStack.set(s.stack, points);
    }
  }
  return [...byStack.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([stack, points]) => ({ guestId, stack, points }));
}
