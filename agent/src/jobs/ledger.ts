// The one place that changes a job: reads it, applies the state machine, writes the job
// and its events in one transaction, then publishes the committed events and logs every
// phase change. Nothing awaits between the read and the write.
import { Phase } from "@lull/proto";
import { LullError, phaseName, type Clock, type Logger } from "@lull/shared";
import type { Event } from "@lull/proto";
import type { EventBus } from "../events/bus.js";
import type { EventDraft, JobRecord } from "./job.js";
import { transition, type JobEvent } from "./machine.js";
import type { CreateResult, JobStore } from "./store.js";

export interface JobLedgerDeps {
  store: JobStore;
  bus: EventBus;
  log: Logger;
  clock: Clock;
}

export type EventSource = JobEvent | ((job: JobRecord, now: number) => JobEvent);

export class JobLedger {
  readonly store: JobStore;
  private readonly bus: EventBus;
  private readonly log: Logger;
  private readonly clock: Clock;

  constructor(deps: JobLedgerDeps) {
    this.store = deps.store;
    this.bus = deps.bus;
    this.log = deps.log;
    this.clock = deps.clock;
  }

  /** Persists a new job (or finds the one with the same idempotency key) and announces it. */
  create(job: JobRecord, initialEvent: EventDraft): CreateResult {
    const result = this.store.createJob(job, [initialEvent], this.clock.now());
    if (result.created) {
      this.log.info({ jobId: job.id, guestId: job.guestId, from: null, to: phaseName(job.phase) }, "job phase changed");
      this.bus.publish(result.events);
    }
    return result;
  }

  /**
   * Applies one event (or several, in order) to a job and commits the result with the events it
   * produced, in one transaction; returns the job as committed. A source may be a function of the
   * current job, evaluated inside the transaction.
   */
  apply(jobId: string, source: EventSource | readonly EventSource[]): JobRecord {
    const sources: readonly EventSource[] = Array.isArray(source) ? source : [source as EventSource];
    const now = this.clock.now();
    const changes: Array<{ from: Phase; to: Phase }> = [];
    let committed: Event[] = [];
    const job = this.store.transaction(() => {
      const current = this.store.getJob(jobId);
      if (!current) throw new LullError("LULL_E_JOB_NOT_FOUND", `job ${jobId} does not exist`);
      let next = current;
      const drafts: EventDraft[] = [];
      for (const s of sources) {
        const event = typeof s === "function" ? s(next, now) : s;
        const step = transition(next, event, now);
        next = step.job;
        for (const effect of step.effects) {
          if (effect.type === "emit") drafts.push(effect.event);
          else changes.push({ from: effect.from, to: effect.to });
        }
      }
      if (drafts.length === 0 && next === current) return current;
      committed = this.store.saveJob(next, drafts, now);
      return next;
    });
    for (const c of changes) {
      this.log.info({ jobId, guestId: job.guestId, from: phaseName(c.from), to: phaseName(c.to) }, "job phase changed");
    }
    this.bus.publish(committed);
    return job;
  }

  /**
   * A note on a job that has already ended (what a clean-up after it did): the job takes no more
   * transitions, so the note is only appended to its events, and published like any other, so a
   * watcher following the job live sees it too.
   */
  noteEnded(job: JobRecord, draft: EventDraft): void {
    const committed = this.store.appendEvents([draft], this.clock.now());
    this.bus.publish(committed);
  }
}
