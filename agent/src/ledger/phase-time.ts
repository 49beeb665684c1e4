// Leaving a phase, as every kind with a phase clock does it: the time spent in the phase being
// left is added to the duration that phase counts toward, and an ended record gets its end time
// and total duration.
import type { Phase } from "@lull/proto";
import { isTerminal } from "@lull/shared";

export type DurationField = "quiesceMs" | "snapshotMs" | "archiveMs";

export interface Timed {
  phase: Phase;
  phaseSince: Date;
  createdAt?: Date | undefined;
  updatedAt?: Date | undefined;
  finishedAt?: Date | undefined;
  quiesceMs: number;
  snapshotMs: number;
  archiveMs: number;
  totalMs: number;
}

/** Which duration the time in each phase counts toward (phases not named count toward none). */
export type PhaseDurations = Partial<Record<Phase, DurationField>>;

export function leavePhase<R extends Timed>(record: R, to: Phase, now: number, durations: PhaseDurations): R {
  const spent = Math.max(0, now - record.phaseSince.getTime());
  const next: R = { ...record, phase: to, phaseSince: new Date(now), updatedAt: new Date(now) };
  const field = durations[record.phase];
  if (field) next[field] += spent;
  if (isTerminal(to)) {
    next.finishedAt = new Date(now);
    next.totalMs = Math.max(0, now - (record.createdAt?.getTime() ?? now));
  }
  return next;
}
