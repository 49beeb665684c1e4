// The one place that changes a group run: creates a run together with its member jobs (one
// transaction: all or nothing), and applies the group state machine, writing the run and its
// GROUP events in one transaction, then publishing them and logging every phase change.
import { EventKind, type Event } from "@lull/proto";
import { LullError, phaseName, type Clock, type Logger } from "@lull/shared";
import type { EventBus } from "../events/bus.js";
import { eventFor, type EventDraft, type JobRecord } from "../jobs/job.js";
import { groupEvent, type GroupRunRecord } from "./group-run.js";
import { groupTransition, type GroupEvent } from "./machine.js";
import type { GroupStore } from "./store.js";

export interface GroupLedgerDeps {
  store: GroupStore;
  bus: EventBus;
  log: Logger;
  clock: Clock;
}

export interface CreateGroupResult {
  run: GroupRunRecord;
  created: boolean;
  members: JobRecord[];
}

export type GroupEventSource = GroupEvent | ((run: GroupRunRecord, now: number) => GroupEvent);

const sameMembers = (a: readonly string[], b: readonly string[]) => a.length === b.length && a.every((g, i) => g === b[i]);

export class GroupLedger {
  readonly store: GroupStore;
  private readonly bus: EventBus;
  private readonly log: Logger;
  private readonly clock: Clock;

  constructor(deps: GroupLedgerDeps) {
    this.store = deps.store;
    this.bus = deps.bus;
    this.log = deps.log;
    this.clock = deps.clock;
  }

  /**
   * Persists a new run and its member jobs (all queued) in one transaction, or finds the run with
   * the same idempotency key (created = false; for another group or other guests it is
   * LULL_E_IDEMPOTENCY_CONFLICT). A busy member guest throws LULL_E_GUEST_BUSY naming it, and nothing is written.
   */
  create(run: GroupRunRecord, members: readonly JobRecord[]): CreateGroupResult {
    const now = this.clock.now();
    const jobs = this.store.jobs;
    let committed: Event[] = [];
    const result = this.store.transaction((): CreateGroupResult => {
      const existing = this.store.runByKey(run.idempotencyKey);
      if (existing) {
        if (existing.groupId !== run.groupId || !sameMembers(existing.guestIds, run.guestIds)) {
          const what = existing.groupId ? `group ${existing.groupId}` : `guests ${existing.guestIds.join(", ")}`;
          throw new LullError("LULL_E_IDEMPOTENCY_CONFLICT", `idempotency key ${run.idempotencyKey} was already used for ${what}`);
        }
        return { run: existing, created: false, members: this.store.memberJobs(existing.id) };
      }
      const what = run.groupId ? `group ${run.groupId}` : "ad hoc group";
      const events: Event[] = this.store.insertRun(run, [groupEvent(run, { message: `${what} run created: ${run.guestIds.join(", ")}` })], now);
      for (const member of members) {
        const created = jobs.createJob(member, [eventFor(member, EventKind.EVENT_KIND_PHASE)], now);
        if (!created.created) {
          throw new LullError("LULL_E_INTERNAL", `member job key ${member.idempotencyKey} already existed`);
        }
        events.push(...created.events);
      }
      committed = events;
      return { run, created: true, members: [...members] };
    });
    if (result.created) {
      this.log.info({ groupRunId: run.id, groupId: run.groupId || null, guests: run.guestIds, jobs: members.map((m) => m.id) }, "group run created");
      this.bus.publish(committed);
    }
    return result;
  }

  /** Applies one event to a run and commits it with its GROUP events; returns the run as committed. */
  apply(runId: string, source: GroupEventSource): GroupRunRecord {
    const now = this.clock.now();
    let committed: Event[] = [];
    let change: { from: string; to: string } | undefined;
    const run = this.store.transaction(() => {
      const current = this.store.getRun(runId);
      if (!current) throw new LullError("LULL_E_GROUP_NOT_FOUND", `group run ${runId} does not exist`);
      const event = typeof source === "function" ? source(current, now) : source;
      const step = groupTransition(current, event, now);
      const drafts: EventDraft[] = [];
      for (const effect of step.effects) {
        if (effect.type === "emit") drafts.push(effect.event);
        else change = { from: phaseName(effect.from), to: phaseName(effect.to) };
      }
      if (drafts.length === 0 && step.run === current) return current;
      committed = this.store.saveRun(step.run, drafts, now);
      return step.run;
    });
    if (change) this.log.info({ groupRunId: runId, ...change }, "group phase changed");
    this.bus.publish(committed);
    return run;
  }
}
