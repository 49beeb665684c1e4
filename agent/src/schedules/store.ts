// The durable record of each (schedule, tick): claimed once (the primary key refuses a second
// claim), ended done/failed, or recorded missed/skipped with its reason. Every record also goes
// to the event log as a note (job id `schedule:<id>`), in the same transaction.
import type { Statement } from "better-sqlite3";
import type { Event } from "@lull/proto";
import type { AgentDatabase } from "../ledger/agent-database.js";
import { EventLog, noteDraft, type EventDraft } from "../ledger/event-log.js";

export type TickOutcome = "running" | "done" | "failed" | "missed" | "skipped";

export interface TickRecord {
  scheduleId: string;
  tickAt: number;
  outcome: TickOutcome;
  reason: string;
  node: string;
  recordedAt: number;
  startedAt: number | undefined;
  endedAt: number | undefined;
  runRef: string;
  /** The stable error code of a failed run (empty otherwise). */
  errorCode: string;
}

interface Row {
  schedule_id: string;
  tick_at: number;
  outcome: TickOutcome;
  reason: string;
  node: string;
  epoch: number;
  recorded_at: number;
  started_at: number | null;
  ended_at: number | null;
  run_ref: string;
  error_code: string;
}

const fromRow = (r: Row): TickRecord => ({
  scheduleId: r.schedule_id,
  tickAt: r.tick_at,
  outcome: r.outcome,
  reason: r.reason,
  node: r.node,
  recordedAt: r.recorded_at,
  startedAt: r.started_at ?? undefined,
  endedAt: r.ended_at ?? undefined,
  runRef: r.run_ref,
  errorCode: r.error_code,
});

export const scheduleJobId = (scheduleId: string) => `schedule:${scheduleId}`;

function note(scheduleId: string, message: string, errorCode = ""): EventDraft {
  return noteDraft({ jobId: scheduleJobId(scheduleId), guestId: "", message, errorCode });
}

export class ScheduleTickStore {
  private readonly stmt: Record<string, Statement>;
  private readonly events: EventLog;

  constructor(
    private readonly database: AgentDatabase,
    private readonly node: string,
    private readonly publish: (events: Event[]) => void = () => {},
  ) {
    const db = database.connection;
    this.events = new EventLog(database);
    this.stmt = {
      insert: db.prepare(
        `INSERT INTO schedule_ticks (schedule_id, tick_at, outcome, reason, node, epoch, recorded_at, started_at, run_ref)
         VALUES (@schedule_id, @tick_at, @outcome, @reason, @node, @epoch, @recorded_at, @started_at, '')
         ON CONFLICT (schedule_id, tick_at) DO NOTHING`,
      ),
      end: db.prepare(
        `UPDATE schedule_ticks SET outcome = @outcome, reason = @reason, ended_at = @ended_at, error_code = @error_code
         WHERE schedule_id = @schedule_id AND tick_at = @tick_at AND outcome = 'running' AND epoch <= @epoch`,
      ),
      ref: db.prepare(`UPDATE schedule_ticks SET run_ref = ? WHERE schedule_id = ? AND tick_at = ?`),
      get: db.prepare(`SELECT * FROM schedule_ticks WHERE schedule_id = ? AND tick_at = ?`),
      latest: db.prepare(`SELECT * FROM schedule_ticks WHERE schedule_id = ? ORDER BY tick_at DESC LIMIT 1`),
      latestRun: db.prepare(
        `SELECT * FROM schedule_ticks WHERE schedule_id = ? AND outcome IN ('running', 'done', 'failed') ORDER BY tick_at DESC LIMIT 1`,
      ),
      orphans: db.prepare(`SELECT * FROM schedule_ticks WHERE outcome = 'running' AND epoch < ?`),
      all: db.prepare(`SELECT * FROM schedule_ticks WHERE schedule_id = ? ORDER BY tick_at`),
      recent: db.prepare(`SELECT * FROM schedule_ticks WHERE schedule_id = ? ORDER BY tick_at DESC LIMIT ?`),
      changedSince: db.prepare(
        `SELECT * FROM schedule_ticks WHERE schedule_id = @schedule_id
           AND ((outcome IN ('missed', 'skipped') AND recorded_at >= @since) OR (outcome = 'failed' AND ended_at >= @since))
         ORDER BY tick_at`,
      ),
      counts: db.prepare(`SELECT outcome, COUNT(*) AS n FROM schedule_ticks WHERE schedule_id = ? GROUP BY outcome`),
    };
  }

  private pending: Event[] = [];

  private append(drafts: EventDraft[], at: number): void {
    this.pending.push(...this.events.append(drafts, at));
  }

  /** One transaction, then its events are published (never before the commit). */
  private unit<T>(fn: () => T): T {
    let out: T;
    try {
      out = this.database.transaction(fn);
    } catch (err) {
      this.pending = [];
      throw err;
    }
    const events = this.pending;
    this.pending = [];
    if (events.length > 0) this.publish(events);
    return out;
  }

  /** Claims the tick for a run; false when the tick already has a record (run, missed or skipped). */
  claim(scheduleId: string, tickAt: number, now: number): boolean {
    return this.unit(() => {
      const r = this.stmt.insert!.run({
        schedule_id: scheduleId,
        tick_at: tickAt,
        outcome: "running",
        reason: "",
        node: this.node,
        epoch: this.database.epoch,
        recorded_at: now,
        started_at: now,
      });
      if (r.changes === 0) return false;
      this.append([note(scheduleId, `schedule ${scheduleId}: tick ${iso(tickAt)} started on ${this.node}`)], now);
      return true;
    });
  }

  setRunRef(scheduleId: string, tickAt: number, ref: string): void {
    this.stmt.ref!.run(ref, scheduleId, tickAt);
  }

  /** Ends a claimed tick; false when it was not running under this (or an older) start. */
  end(scheduleId: string, tickAt: number, outcome: "done" | "failed", reason: string, now: number, errorCode = ""): boolean {
    return this.unit(() => {
      const r = this.stmt.end!.run({ schedule_id: scheduleId, tick_at: tickAt, outcome, reason, ended_at: now, epoch: this.database.epoch, error_code: errorCode });
      if (r.changes === 0) return false;
      this.append([note(scheduleId, `schedule ${scheduleId}: tick ${iso(tickAt)} ${outcome}${reason ? `: ${reason}` : ""}`, errorCode)], now);
      return true;
    });
  }

  /** Records a tick that did not run; false when the tick already has a record. */
  notRun(scheduleId: string, tickAt: number, outcome: "missed" | "skipped", reason: string, now: number): boolean {
    return this.unit(() => {
      const r = this.stmt.insert!.run({
        schedule_id: scheduleId,
        tick_at: tickAt,
        outcome,
        reason,
        node: this.node,
        epoch: this.database.epoch,
        recorded_at: now,
        started_at: null,
      });
      if (r.changes === 0) return false;
      this.append([note(scheduleId, `schedule ${scheduleId}: tick ${iso(tickAt)} ${outcome} on ${this.node}: ${reason}`)], now);
      return true;
    });
  }

  /** Runs left `running` by an earlier start of the agent end failed (the agent restarted during them). */
  failOrphans(now: number): TickRecord[] {
    return this.unit(() => {
      const rows = (this.stmt.orphans!.all(this.database.epoch) as Row[]).map(fromRow);
      for (const r of rows) {
        this.stmt.end!.run({
          schedule_id: r.scheduleId,
          tick_at: r.tickAt,
          outcome: "failed",
          reason: "the agent stopped during the run (it was restarted)",
          ended_at: now,
          epoch: this.database.epoch,
          error_code: "LULL_E_AGENT_RESTARTED",
        });
        this.append([note(r.scheduleId, `schedule ${r.scheduleId}: tick ${iso(r.tickAt)} failed: the agent stopped during the run`, "LULL_E_AGENT_RESTARTED")], now);
      }
      return rows;
    });
  }

  get(scheduleId: string, tickAt: number): TickRecord | undefined {
    const r = this.stmt.get!.get(scheduleId, tickAt) as Row | undefined;
    return r ? fromRow(r) : undefined;
  }

  /** The newest record of any outcome. */
  latest(scheduleId: string): TickRecord | undefined {
    const r = this.stmt.latest!.get(scheduleId) as Row | undefined;
    return r ? fromRow(r) : undefined;
  }

  /** The newest tick that ran (or is running). */
  latestRun(scheduleId: string): TickRecord | undefined {
    const r = this.stmt.latestRun!.get(scheduleId) as Row | undefined;
    return r ? fromRow(r) : undefined;
  }

  /** The newest `limit` records, newest first. */
  recent(scheduleId: string, limit: number): TickRecord[] {
    return (this.stmt.recent!.all(scheduleId, limit) as Row[]).map(fromRow);
  }

  /** How many ticks of the schedule are recorded with each outcome. */
  counts(scheduleId: string): Partial<Record<TickOutcome, number>> {
    const out: Partial<Record<TickOutcome, number>> = {};
    for (const r of this.stmt.counts!.all(scheduleId) as Array<{ outcome: TickOutcome; n: number }>) out[r.outcome] = r.n;
    return out;
  }

  /** Ticks recorded missed or skipped, or ended failed, at or after `since` (ms), oldest tick first. */
  changedSince(scheduleId: string, since: number): TickRecord[] {
    return (this.stmt.changedSince!.all({ schedule_id: scheduleId, since }) as Row[]).map(fromRow);
  }

  all(scheduleId: string): TickRecord[] {
    return (this.stmt.all!.all(scheduleId) as Row[]).map(fromRow);
  }
}

const iso = (ms: number) => new Date(ms).toISOString();
