// The group runs' ledger: the shared ledger (ledger/ledger.ts) over `group_runs` and the group
// machine (machine.ts). A run is created together with its member jobs, through the jobs' own
// ledger, in one unit of work: all or nothing, and every member's creation logged like any job's.
import { EventKind } from "@lull/proto";
import { LullError } from "@lull/shared";
import { eventFor, type JobRecord } from "../jobs/job.js";
import type { JobLedger } from "../jobs/ledger.js";
import { KindLedger, type EventSource } from "../ledger/ledger.js";
import { groupEvent, type GroupRunRecord } from "./group-run.js";
import { groupTransition, type GroupEvent } from "./machine.js";
import { GroupStore } from "./store.js";

export interface CreateGroupResult {
  run: GroupRunRecord;
  created: boolean;
  members: JobRecord[];
}

export type GroupEventSource = EventSource<GroupRunRecord, GroupEvent>;

const sameMembers = (a: readonly string[], b: readonly string[]) => a.length === b.length && a.every((g, i) => g === b[i]);

export class GroupLedger {
  readonly store: GroupStore;
  private readonly jobs: JobLedger;
  private readonly runs: KindLedger<GroupRunRecord, GroupEvent>;

  constructor(jobs: JobLedger) {
    this.jobs = jobs;
    const store = (this.store = new GroupStore(jobs.store));
    this.runs = new KindLedger<GroupRunRecord, GroupEvent>(jobs.ledger, {
      noun: "group",
      transition: (run, event, now) => {
        const step = groupTransition(run, event, now);
        return { record: step.run, effects: step.effects };
      },
      load: (id) => store.getRun(id),
      insert: (run) => store.insertRun(run),
      save: (run) => store.updateRun(run),
      notFound: (id) => new LullError("LULL_E_GROUP_NOT_FOUND", `group run ${id} does not exist`),
      logFields: (run) => ({ groupRunId: run.id }),
    });
  }

  /**
   * Persists a new run and its member jobs (all queued) in one transaction, or finds the run with
   * the same idempotency key (created = false; for another group or other guests it is
   * LULL_E_IDEMPOTENCY_CONFLICT). A busy member guest throws LULL_E_GUEST_BUSY naming it, and nothing is written.
   */
  create(run: GroupRunRecord, members: readonly JobRecord[]): CreateGroupResult {
    return this.jobs.ledger.commit((): CreateGroupResult => {
      const existing = this.store.runByKey(run.idempotencyKey);
      if (existing) {
        if (existing.groupId !== run.groupId || !sameMembers(existing.guestIds, run.guestIds)) {
          const what = existing.groupId ? `group ${existing.groupId}` : `guests ${existing.guestIds.join(", ")}`;
          throw new LullError("LULL_E_IDEMPOTENCY_CONFLICT", `idempotency key ${run.idempotencyKey} was already used for ${what}`);
        }
        return { run: existing, created: false, members: this.store.localMemberJobs(existing.id) };
      }
      const what = run.groupId ? `group ${run.groupId}` : "ad hoc group";
      this.runs.insert(run, [groupEvent(run, { message: `${what} run created: ${run.guestIds.join(", ")}` })]);
      for (const member of members) {
        if (!this.jobs.create(member, eventFor(member, EventKind.EVENT_KIND_PHASE)).created) {
          throw new LullError("LULL_E_INTERNAL", `member job key ${member.idempotencyKey} already existed`);
        }
      }
      return { run, created: true, members: [...members] };
    });
  }

  /** Applies one event to a run and commits it with its GROUP events; returns the run as committed. */
  apply(runId: string, source: GroupEventSource): GroupRunRecord {
    return this.runs.apply(runId, source);
  }
}
