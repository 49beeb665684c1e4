// The backup jobs' ledger: the shared ledger (ledger/ledger.ts) over the jobs table and the backup
// machine (machine.ts). A job that ends `done` leaves its restore point in the same transaction.
import { LullError, type Clock, type Logger } from "@lull/shared";
import type { EventBus } from "../events/bus.js";
import { BackupStore } from "../backups/store.js";
import type { EventDraft } from "../ledger/event-log.js";
import { KindLedger, Ledger, type EventSource as Source } from "../ledger/ledger.js";
import type { JobRecord } from "./job.js";
import { transition, type JobEvent, type RestorePointEffect } from "./machine.js";
import type { CreateResult, JobStore } from "./store.js";

export type EventSource = Source<JobRecord, JobEvent>;

export interface JobLedgerDeps {
  store: JobStore;
  bus: EventBus;
  log: Logger;
  clock: Clock;
}

export class JobLedger {
  readonly store: JobStore;
  readonly backups: BackupStore;
  readonly ledger: Ledger;
  private readonly jobs: KindLedger<JobRecord, JobEvent, RestorePointEffect>;

  constructor(deps: JobLedgerDeps) {
    const store = deps.store;
    // The one unit of work of this database: other kinds (group runs) join it through `ledger`.
    const ledger = new Ledger({ database: store.database, events: store.events, bus: deps.bus, log: deps.log, clock: deps.clock });
    this.ledger = ledger;
    this.store = store;
    this.backups = new BackupStore(store.database);
    this.jobs = new KindLedger(ledger, {
      noun: "job",
      transition: (job, event, now) => {
        const step = transition(job, event, now);
        return { record: step.job, effects: step.effects };
      },
      load: (id) => store.getJob(id),
      insert: (job) => store.insertJob(job),
      save: (job, previous) => store.updateJob(job, previous),
      notFound: (id) => new LullError("LULL_E_JOB_NOT_FOUND", `job ${id} does not exist`),
      logFields: (job) => ({ jobId: job.id, guestId: job.guestId }),
      write: (_job, effect) => this.backups.insert(effect.point),
    });
  }

  /**
   * Persists a new job (or finds the one with the same idempotency key) and announces it, in the
   * caller's unit when there is one (a group run creates its members in its own transaction).
   */
  create(job: JobRecord, initialEvent: EventDraft): CreateResult {
    return this.ledger.commit(() => {
      const existing = this.store.existingFor(job);
      if (existing) return { job: existing, created: false, events: [] };
      return { job, created: true, events: this.jobs.insert(job, [initialEvent]) };
    });
  }

  /**
   * Applies one event (or several, in order) to a job and commits the result with the events it
   * produced, in one transaction; returns the job as committed. A source may be a function of the
   * current job, evaluated inside the transaction.
   */
  apply(jobId: string, source: EventSource | readonly EventSource[]): JobRecord {
    return this.jobs.apply(jobId, source);
  }

  /**
   * A note on a job that has already ended (what a clean-up after it did): the job takes no more
   * transitions, so the note is only appended to its events, and published like any other, so a
   * watcher following the job live sees it too.
   */
  noteEnded(_job: JobRecord, draft: EventDraft): void {
    this.ledger.commit(() => this.ledger.append([draft], this.ledger.now()));
  }
}
