// The schedule engine: for each schedule, wait for its next tick, then run it exactly once —
// claimed in the ledger by (schedule, tick) before anything starts — or record why not (missed,
// skipped) as an event. Cluster-wide schedules run under the pmxcfs lease, and their claim is
// also made cluster-wide (mkdir /etc/pve/lull/ticks/<schedule>/<tick>), so a node that wins the
// lease for a tick another node already ran refuses it durably, whatever the locks say.
//
// On start: runs left `running` by a crashed start end failed; ticks that passed while the agent
// was down are recorded missed ("the agent was not running"), and with `catchUp: once` the newest
// of them runs now. A tick whose handling is still going when the next one comes is skipped with
// the reason. A tick noticed late (the process was paused or busy for longer than `lateAfterMs`)
// is missed, unless it is the newest and catch-up says run once.
import { LullError, asLullError } from "@lull/shared";
import { nextTick, parseCalendarEvent, ticksBetween, type CalendarEvent } from "./calendar.js";
import { errno, mkdirLevels, type ClusterFs } from "./cluster-fs.js";
import type { ScheduleConfig } from "./config.js";
import { acquireLease, type Clock, type Lease, type LeaseTiming } from "./lease.js";
import type { ScheduleTickStore, TickRecord } from "./store.js";

/** What a run gets: the tick, a signal that aborts at the run's deadline or when the lease is lost. */
export interface RunContext {
  schedule: ScheduleConfig;
  tickAt: number;
  signal: AbortSignal;
  /** Cluster-wide runs: true while the lease may be acted on. Check before every side effect. */
  leaseValid(): boolean;
  /** Cluster-wide runs: the lease (when it was lost and why), for reports. */
  lease: Lease | undefined;
}

/** The port a schedule's action goes through: start the backup, the verification, the prune. */
export type ScheduleAction = (ctx: RunContext) => Promise<{ ref?: string } | void>;

export interface EngineOptions {
  schedules: readonly ScheduleConfig[];
  store: ScheduleTickStore;
  actions: Partial<Record<ScheduleConfig["action"], ScheduleAction>>;
  clock: Clock;
  /** Needed when a schedule has scope cluster. */
  cluster?: ClusterFs | undefined;
  leaseTiming: LeaseTiming;
  /** A tick handled more than this after it was due counts as missed. Default 60 s. */
  lateAfterMs?: number;
  log?: (msg: string, fields?: Record<string, unknown>) => void;
  /**
   * The schedules' source may change (the cluster-wide schedules file): `load` is asked every
   * `everyMs` and the engine reconfigures when its answer differs; a `load` that throws keeps the
   * schedules as they are (and is logged).
   */
  refresh?: { everyMs: number; load: () => Promise<readonly ScheduleConfig[]> } | undefined;
}

interface Slot {
  schedule: ScheduleConfig;
  event: CalendarEvent;
  /** The newest tick this start has dealt with. */
  handledThrough: number;
  running: { tickAt: number; done: Promise<void> } | undefined;
  lease: Lease | undefined;
  leaseStats: { acquired: number; refused: number; lost: number };
  /** Stops this schedule's loop (a reconfigure removed or changed it); its running work goes on to its end. */
  retire: AbortController;
}

export interface ScheduleStatus {
  id: string;
  action: string;
  schedule: string;
  timeZone: string;
  scope: string;
  catchUp: string;
  lastRun: TickRecord | undefined;
  lastRecord: TickRecord | undefined;
  nextRunAt: number | undefined;
  running: boolean;
  /** The expected time between two ticks (the calendar's next two occurrences), ms. */
  intervalMs: number | undefined;
  /** Recorded ticks by outcome. */
  ticks: Partial<Record<TickRecord["outcome"], number>>;
  /** Cluster scope: this node holds the schedule's lease now (a run under it is going). */
  leaseHeld: boolean;
  /** Cluster scope, since the agent started: leases taken, refused (held elsewhere, no quorum) and lost while held. */
  lease: { acquired: number; refused: number; lost: number };
}

export class ScheduleEngine {
  private slots: Slot[];
  /** Slots a reconfigure retired whose run may still be going (close() waits for them). */
  private readonly retired: Slot[] = [];
  private readonly stop = new AbortController();
  private loops: Promise<void>[] = [];
  private readonly lateAfterMs: number;
  private started = false;

  constructor(private readonly o: EngineOptions) {
    this.lateAfterMs = o.lateAfterMs ?? 60_000;
    this.checkCluster(o.schedules);
    this.slots = o.schedules.map((schedule) => this.slotOf(schedule));
  }

  private checkCluster(schedules: readonly ScheduleConfig[]): void {
    if (schedules.some((s) => s.scope === "cluster") && !this.o.cluster) {
      throw new LullError("LULL_E_CONFIG_INVALID", "a schedule has scope cluster but no cluster file system (pmxcfs) is configured");
    }
  }

  private slotOf(schedule: ScheduleConfig): Slot {
    return {
      schedule,
      event: parseCalendarEvent(schedule.schedule),
      handledThrough: 0,
      running: undefined,
      lease: undefined,
      leaseStats: { acquired: 0, refused: 0, lost: 0 },
      retire: new AbortController(),
    };
  }

  /**
   * Replaces the schedules (a changed cluster-wide schedules file): a schedule that is gone or
   * changed stops ticking (a run of it that is going goes on to its end); a new or changed one
   * starts with the next tick after now — no catch-up for ticks before it existed here.
   */
  reconfigure(schedules: readonly ScheduleConfig[]): { added: string[]; removed: string[]; changed: string[] } {
    this.checkCluster(schedules);
    const same = (a: ScheduleConfig, b: ScheduleConfig) => JSON.stringify(a) === JSON.stringify(b);
    const byId = new Map(schedules.map((s) => [s.id, s]));
    const out = { added: [] as string[], removed: [] as string[], changed: [] as string[] };
    const kept: Slot[] = [];
    for (const slot of this.slots) {
      const next = byId.get(slot.schedule.id);
      if (next && same(next, slot.schedule)) {
        kept.push(slot);
        continue;
      }
      (next ? out.changed : out.removed).push(slot.schedule.id);
      slot.retire.abort();
      if (slot.running) this.retired.push(slot);
    }
    const now = this.o.clock.now();
    for (const schedule of schedules) {
      if (kept.some((k) => k.schedule.id === schedule.id)) continue;
      if (!out.changed.includes(schedule.id)) out.added.push(schedule.id);
      const slot = this.slotOf(schedule);
      slot.handledThrough = now;
      kept.push(slot);
      if (this.started) this.loops.push(this.loop(slot));
    }
    this.slots = kept;
    return out;
  }

  /** Crash clean-up and catch-up, then one loop per schedule. */
  start(): void {
    this.started = true;
    const now = this.o.clock.now();
    for (const r of this.o.store.failOrphans(now)) this.o.log?.("schedule run failed: the agent stopped during it", { schedule: r.scheduleId, tick: r.tickAt });
    for (const slot of this.slots) {
      const last = this.o.store.latest(slot.schedule.id);
      slot.handledThrough = now;
      if (last) {
        const missed = ticksBetween(slot.event, slot.schedule.timeZone, last.tickAt, now, 10_000);
        this.dealWithMissed(slot, missed, "the agent was not running");
      }
      this.loops.push(this.loop(slot));
    }
    if (this.o.refresh) this.loops.push(this.refreshLoop(this.o.refresh));
  }

  private async refreshLoop(refresh: NonNullable<EngineOptions["refresh"]>): Promise<void> {
    let lastError = "";
    while (!this.stop.signal.aborted) {
      await this.o.clock.sleep(refresh.everyMs, this.stop.signal).catch(() => undefined);
      if (this.stop.signal.aborted) return;
      try {
        const next = await refresh.load();
        lastError = "";
        const change = this.reconfigure(next);
        if (change.added.length + change.removed.length + change.changed.length > 0) this.o.log?.("schedules changed", change);
      } catch (err) {
        const message = (err as Error).message;
        if (message !== lastError) this.o.log?.("schedules not reloaded: the source is wrong; the schedules stay as they were", { error: message });
        lastError = message;
      }
    }
  }

  /** Stops the loops; running work gets its signal aborted and is awaited. */
  async close(): Promise<void> {
    this.stop.abort(new LullError("LULL_E_SHUTTING_DOWN", "the agent is shutting down"));
    await Promise.allSettled(this.loops);
    await Promise.allSettled([...this.slots, ...this.retired].map((s) => s.running?.done));
  }

  /** The newest tick records of a schedule, newest first. */
  recent(scheduleId: string, limit: number): TickRecord[] {
    return this.o.store.recent(scheduleId, limit);
  }

  status(): ScheduleStatus[] {
    const now = this.o.clock.now();
    return this.slots.map((s) => {
      const next = nextTick(s.event, s.schedule.timeZone, Math.max(now, s.handledThrough));
      const after = next === undefined ? undefined : nextTick(s.event, s.schedule.timeZone, next);
      return {
      id: s.schedule.id,
      action: s.schedule.action,
      schedule: s.schedule.schedule,
      timeZone: s.schedule.timeZone,
      scope: s.schedule.scope,
      catchUp: s.schedule.catchUp,
      lastRun: this.o.store.latestRun(s.schedule.id),
      lastRecord: this.o.store.latest(s.schedule.id),
      nextRunAt: next,
      running: s.running !== undefined,
      intervalMs: next !== undefined && after !== undefined ? after - next : undefined,
      ticks: this.o.store.counts(s.schedule.id),
      // Not valid(): that may declare the lease lost, and a scrape must never change a run.
      leaseHeld: s.lease !== undefined && s.lease.lostAt === undefined,
      lease: { ...s.leaseStats },
      };
    });
  }

  private dealWithMissed(slot: Slot, missed: number[], reason: string): void {
    if (missed.length === 0) return;
    const now = this.o.clock.now();
    const runNewest = slot.schedule.catchUp === "once";
    const recordMissed = runNewest ? missed.slice(0, -1) : missed;
    for (const t of recordMissed) this.o.store.notRun(slot.schedule.id, t, "missed", reason, now);
    if (runNewest) this.handle(slot, missed.at(-1)!, `catch-up after: ${reason}`);
  }

  private async loop(slot: Slot): Promise<void> {
    const { clock } = this.o;
    const stopped = AbortSignal.any([this.stop.signal, slot.retire.signal]);
    while (!stopped.aborted) {
      const t = nextTick(slot.event, slot.schedule.timeZone, slot.handledThrough);
      if (t === undefined) return;
      // Sleep in short steps: a paused or suspended process notices the time when it wakes.
      while (!stopped.aborted && clock.now() < t) {
        await clock.sleep(Math.min(t - clock.now(), 1_000), stopped).catch(() => undefined);
      }
      if (stopped.aborted) return;
      const now = clock.now();
      // Every tick up to now that this start has not dealt with.
      const due = ticksBetween(slot.event, slot.schedule.timeZone, slot.handledThrough, now, 10_000);
      slot.handledThrough = now;
      const late = due.filter((d) => now - d > this.lateAfterMs);
      const onTime = due.filter((d) => now - d <= this.lateAfterMs);
      if (late.length > 0) {
        const reason = `the agent was not scheduled in time (noticed ${Math.round((now - late[0]!) / 1000)} s late: paused or overloaded)`;
        if (onTime.length > 0) for (const d of late) this.o.store.notRun(slot.schedule.id, d, "missed", reason, now);
        else this.dealWithMissed(slot, late, reason);
      }
      for (const d of onTime.slice(0, -1)) this.o.store.notRun(slot.schedule.id, d, "missed", "a newer tick was already due", now);
      if (onTime.length > 0) this.handle(slot, onTime.at(-1)!, "");
    }
  }

  /** Starts the tick's run in the background, or records why it cannot. */
  private handle(slot: Slot, tickAt: number, note: string): void {
    const id = slot.schedule.id;
    const now = this.o.clock.now();
    // A run of the schedule before a reconfigure changed it counts as the previous run too.
    const previous = slot.running ?? this.retired.find((r) => r.schedule.id === id && r.running)?.running;
    if (previous) {
      this.o.store.notRun(id, tickAt, "skipped", `the previous run (tick ${new Date(previous.tickAt).toISOString()}) is still going`, now);
      return;
    }
    if (this.o.store.get(id, tickAt)) return; // already recorded (refused durably)
    const done = this.runTick(slot, tickAt, note).catch((err) => {
      this.o.log?.("schedule tick failed unexpectedly", { schedule: id, tick: tickAt, err: String(err) });
    }).finally(() => {
      if (slot.running?.tickAt === tickAt) {
        slot.running = undefined;
        slot.lease = undefined;
      }
    });
    slot.running = { tickAt, done };
  }

  private async runTick(slot: Slot, tickAt: number, note: string): Promise<void> {
    const { schedule } = slot;
    const { store, clock } = this.o;
    const action = this.o.actions[schedule.action];
    if (!action) {
      store.notRun(schedule.id, tickAt, "skipped", `action ${schedule.action} is not available in this build`, clock.now());
      return;
    }
    let lease: Lease | undefined;
    if (schedule.scope === "cluster") {
      const got = await acquireLease(this.o.cluster!, `sched-${schedule.id}`, this.o.leaseTiming, clock);
      if (!got.held) {
        slot.leaseStats.refused++;
        const why = got.code === "timeout" ? `the lease is held by another node (${got.reason})` : got.code === "no-quorum" ? `this node has no quorum, no cluster-wide work starts (${got.reason})` : got.reason;
        store.notRun(schedule.id, tickAt, "skipped", why, clock.now());
        return;
      }
      lease = got.lease;
      slot.leaseStats.acquired++;
      slot.lease = lease;
      lease.signal.addEventListener("abort", () => slot.leaseStats.lost++, { once: true });
      // The cluster-wide claim: refused if any node already ran this tick.
      try {
        if (!lease.valid()) throw new Error(`lease lost before the claim: ${lease.lostReason}`);
        await mkdirLevels(this.o.cluster!, `lull/ticks/${schedule.id}`);
        await this.o.cluster!.mkdir(`lull/ticks/${schedule.id}/${tickAt}`);
      } catch (err) {
        await lease.release();
        const why = errno(err) === "EEXIST" ? "the tick already ran on another node (its cluster-wide record exists)" : `the cluster-wide claim failed: ${(err as Error).message}`;
        store.notRun(schedule.id, tickAt, "skipped", why, clock.now());
        return;
      }
    }
    if (!store.claim(schedule.id, tickAt, clock.now())) {
      await lease?.release();
      return;
    }
    // The run's deadline: its maxRunMs, and never past the next tick (a hung run cannot pin the lease past one tick).
    const next = nextTick(slot.event, schedule.timeZone, tickAt);
    const limit = Math.min(schedule.maxRunMs ?? Infinity, next === undefined ? Infinity : next - clock.now());
    const deadline = new AbortController();
    const timer = Number.isFinite(limit) ? clock.sleep(Math.max(0, limit), deadline.signal).then(() => {
      if (!deadline.signal.aborted) {
        const why = limit === schedule.maxRunMs ? `the run reached maxRunMs (${schedule.maxRunMs} ms)` : "the next tick came (a run may not outlive its tick)";
        deadline.abort(new LullError("LULL_E_CANCELLED", why));
      }
    }) : undefined;
    const signals = [deadline.signal, this.stop.signal, ...(lease ? [lease.signal] : [])];
    const signal = AbortSignal.any(signals);
    let outcome: "done" | "failed" = "done";
    let reason = note;
    let code = "";
    let abandoned = false;
    try {
      const result = await this.bounded(action({ schedule, tickAt, signal, lease, leaseValid: () => lease?.valid() ?? true }), signal);
      if (result && result.ref) store.setRunRef(schedule.id, tickAt, result.ref);
      if (signal.aborted) {
        outcome = "failed";
        reason = String((signal.reason as Error)?.message ?? signal.reason);
        code = "LULL_E_CANCELLED";
      }
    } catch (err) {
      abandoned = err instanceof AbandonedRun;
      const e = abandoned ? asLullError(err) : signal.aborted ? asLullError(signal.reason) : asLullError(err);
      outcome = "failed";
      reason = e.message;
      code = e.code;
    } finally {
      deadline.abort();
      await timer;
    }
    if (lease && abandoned) {
      // The work may still be going: never rmdir under it. Stop renewing; pmxcfs frees the lock
      // after its timeout, by which time the lease's own validity has long run out.
      lease.abandon();
    } else if (lease) {
      const released = await lease.release();
      if (released === "abandoned") reason = `${reason}${reason ? "; " : ""}the lock's rmdir hung and was abandoned (pmxcfs frees it)`;
    }
    store.end(schedule.id, tickAt, outcome, reason, clock.now(), code);
  }

  /** The run's promise, but given up `stopWithinMs` after its signal aborted (the record says so). */
  private bounded<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
    const stopWithin = this.o.leaseTiming.stopWithinMs;
    const giveUp = new AbortController();
    return new Promise<T>((resolve, reject) => {
      let settled = false;
      const settle = () => {
        settled = true;
        signal.removeEventListener("abort", onAbort);
        giveUp.abort();
      };
      p.then((v) => { settle(); resolve(v); }, (e) => { settle(); reject(e); });
      function onAbort(this: void) {
        void wait().then(() => {
          if (!settled) reject(new AbandonedRun(`the run did not stop within ${Math.round(stopWithin / 1000)} s of being cancelled (${String((signal.reason as Error)?.message ?? signal.reason)}); it was abandoned`));
        });
      }
      const wait = () => this.o.clock.sleep(stopWithin, giveUp.signal);
      if (signal.aborted) onAbort();
      else signal.addEventListener("abort", onAbort, { once: true });
    });
  }

}

class AbandonedRun extends LullError {
  constructor(message: string) {
    super("LULL_E_CANCELLED", message);
  }
}
