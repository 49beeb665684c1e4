// What the operator-facing outputs (metrics, notifications) react to: facts read from the store
// after a committed event, never taken from an event's payload. The sources: the job ledger
// (`job-ended`, `stack-resumed`, below), verification (`verification-ended`,
// verification-facts.ts; `verification-stale`, stale-watch.ts) and schedules
// (`schedule-not-run`, `schedule-run-failed`, schedule-facts.ts), all on the same feed.
import { EventKind, StackState, type Event } from "@lull/proto";
import { isTerminal, type Logger } from "@lull/shared";
import type { RestorePoint } from "../backups/restore-point.js";
import type { EventBus } from "../events/bus.js";
import type { JobRecord } from "../jobs/job.js";
import type { TickRecord } from "../schedules/store.js";
import type { VerifyRecord } from "../verify/machine.js";

/** A schedule as a fact names it: its id, action and the guests (and their stacks) it covers. */
export interface ScheduleRef {
  id: string;
  action: "backup" | "verify" | "prune";
  guests: string[];
  /** verify: the checked stacks of its guests; backup and prune: the stacks of each guest's newest point. */
  stacks: string[];
}

export type Fact =
  /** A backup job reached done, failed or cancelled (the job as committed). */
  | { kind: "job-ended"; job: JobRecord }
  /** A stack of a job was verified up again; `downtimeMs` is what its controller measured. */
  | { kind: "stack-resumed"; job: JobRecord; stack: string; downtimeMs: number; early: boolean }
  /** A verification run ended passed, failed or cancelled (the run as committed; its point if it still exists). */
  | { kind: "verification-ended"; run: VerifyRecord; point: RestorePoint | undefined; checkedStacks: string[] }
  /**
   * A checked stack went stale: no point of it passed verification for longer than `staleAfterMs`.
   * `since` is when its newest pass was (or, never verified, its guest's first point); told once per episode.
   */
  | { kind: "verification-stale"; guestId: string; stack: string; lastVerified: { pointId: string; at: number } | undefined; since: number; staleAfterMs: number; at: number }
  /** Ticks of a schedule recorded missed or skipped together (one batch: e.g. every tick of a downtime). */
  | { kind: "schedule-not-run"; schedule: ScheduleRef; ticks: TickRecord[]; at: number }
  /** A scheduled run ended failed (the tick as recorded). */
  | { kind: "schedule-run-failed"; schedule: ScheduleRef; tick: TickRecord };

export type FactListener = (fact: Fact) => void;

/** Fan-out of facts to the outputs; a listener that throws is logged and the others still run. */
export class FactFeed {
  private readonly listeners = new Set<FactListener>();

  constructor(private readonly log: Logger) {}

  subscribe(listener: FactListener): () => void {
    this.listeners.add(listener);
    return () => void this.listeners.delete(listener);
  }

  publish(fact: Fact): void {
    for (const listener of [...this.listeners]) {
      try {
        listener(fact);
      } catch (err) {
        this.log.error({ err, fact: fact.kind }, "fact listener failed");
      }
    }
  }
}

/** How many (job, stack) pairs the feed remembers so a stack's resume is told once. */
const SEEN_LIMIT = 4096;

/**
 * Turns the job ledger's committed events into facts: a terminal PHASE event → `job-ended`, a
 * STACK event whose stack is now resumed → `stack-resumed` (once per job and stack). Both re-read
 * the job through `getJob`. Returns the unsubscribe function.
 */
export function feedJobFacts(bus: EventBus, getJob: (id: string) => JobRecord | undefined, feed: FactFeed): () => void {
  const resumed = new Set<string>();
  const ended = new Set<string>();
  const remember = (set: Set<string>, key: string): boolean => {
    if (set.has(key)) return false;
    set.add(key);
    if (set.size > SEEN_LIMIT) set.delete(set.values().next().value as string);
    return true;
  };
  // A restore in place (kind restore) is no backup: its end and its stacks' downtime are not backup facts.
  const backupJob = (id: string) => {
    const job = getJob(id);
    return job?.kind === "restore" ? undefined : job;
  };
  return bus.subscribe({}, (event: Event) => {
    if (!event.jobId) return;
    if (event.kind === EventKind.EVENT_KIND_PHASE && isTerminal(event.phase)) {
      const job = backupJob(event.jobId);
      if (job && isTerminal(job.phase) && remember(ended, job.id)) feed.publish({ kind: "job-ended", job });
      return;
    }
    if (event.kind === EventKind.EVENT_KIND_STACK && event.stackState === StackState.STACK_STATE_RESUMED) {
      const job = backupJob(event.jobId);
      const stack = job?.stacks.find((s) => s.stack === event.stack);
      if (!job || !stack || stack.state !== StackState.STACK_STATE_RESUMED) return;
      if (!remember(resumed, `${job.id}/${stack.stack}`)) return;
      feed.publish({ kind: "stack-resumed", job, stack: stack.stack, downtimeMs: stack.downtimeMs, early: stack.resumedEarly });
    }
  });
}
