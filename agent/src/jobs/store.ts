// The backup jobs' tables in the agent's SQLite database (better-sqlite3): jobs, the stacks of
// each job's barrier, and registered stacks with leases. Every method is synchronous. The agent
// changes a job only through its ledger (jobs/ledger.ts); `createJob`/`saveJob` write a job and
// its events directly, for tests and tools that seed a database into a given state.
//
// Fencing: job writes carry the database's epoch and only succeed on rows whose epoch is not
// newer, so a runner of an older agent start cannot overwrite what a newer one decided.
import type { Database as Db, Statement } from "better-sqlite3";
import type { Event } from "@lull/proto";
import { LullError } from "@lull/shared";
import { AgentDatabase, type AgentDatabaseOptions } from "../ledger/agent-database.js";
import { EventLog, type EventDraft } from "../ledger/event-log.js";
import type { JobRecord } from "./job.js";
import { jobFromRow, jobToRow, stackFromRow, stackToRow, type JobRow, type JobStackRow } from "./rows.js";

export interface ListJobsQuery {
  guestId?: string | undefined;
  activeOnly?: boolean;
  limit: number;
  /** Only jobs older than this position (the last row of the previous page, api/page-token.ts). */
  before?: { createdAt: number; id: string } | undefined;
}

export interface CreateResult {
  job: JobRecord;
  created: boolean;
  events: Event[];
}

const JOB_COLUMNS: readonly (keyof JobRow)[] = [
  "id", "kind", "guest_id", "idempotency_key", "phase", "engine", "mode", "consistency", "policy", "created_at", "updated_at",
  "phase_since", "snapshot_at", "finished_at", "failed_in", "error_code", "error_message", "archive_path",
  "archive_bytes", "bytes_done", "bytes_total", "quiesce_ms", "snapshot_ms", "archive_ms", "total_ms",
  "quiesce_timeout_ms", "requested_by", "epoch", "group_run_id",
];

const ACTIVE = "phase NOT IN ('done', 'failed', 'cancelled')";

export class JobStore {
  /** The event log of the same database. */
  readonly events: EventLog;
  private readonly db: Db;
  private readonly stmt: Record<string, Statement>;

  /** Opens (and migrates) a database with a new epoch and the job store over it; close() closes it. */
  static open(path: string, options: AgentDatabaseOptions = {}): JobStore {
    return new JobStore(AgentDatabase.open(path, options));
  }

  constructor(readonly database: AgentDatabase) {
    const db = (this.db = database.connection);
    this.events = new EventLog(database);
    this.stmt = {
      jobById: db.prepare("SELECT * FROM jobs WHERE id = ?"),
      jobByKey: db.prepare("SELECT * FROM jobs WHERE idempotency_key = ?"),
      activeJob: db.prepare(`SELECT * FROM jobs WHERE guest_id = ? AND ${ACTIVE}`),
      nonTerminal: db.prepare(`SELECT * FROM jobs WHERE ${ACTIVE} ORDER BY created_at, id`),
      stacksOf: db.prepare("SELECT * FROM job_stacks WHERE job_id = ? ORDER BY stack"),
      insertJob: db.prepare(`INSERT INTO jobs (${JOB_COLUMNS.join(", ")}) VALUES (${JOB_COLUMNS.map((c) => "@" + c).join(", ")})`),
      updateJob: db.prepare(
        `UPDATE jobs SET ${JOB_COLUMNS.filter((c) => c !== "id")
          .map((c) => `${c} = @${c}`)
          .join(", ")} WHERE id = @id AND epoch <= @epoch`,
      ),
      upsertJobStack: db.prepare(
        `INSERT INTO job_stacks (job_id, stack, state, reason, downtime_ms, resumed_early, acknowledged_at, resumed_at, post_step)
         VALUES (@job_id, @stack, @state, @reason, @downtime_ms, @resumed_early, @acknowledged_at, @resumed_at, @post_step)
         ON CONFLICT (job_id, stack) DO UPDATE SET state = excluded.state, reason = excluded.reason,
           downtime_ms = excluded.downtime_ms, resumed_early = excluded.resumed_early,
           acknowledged_at = excluded.acknowledged_at, resumed_at = excluded.resumed_at, post_step = excluded.post_step`,
      ),
      upsertLease: db.prepare(
        `INSERT INTO stacks (guest_id, stack, controller_id, registered_at, lease_expires_at)
         VALUES (@guest_id, @stack, @controller_id, @now, @expires)
         ON CONFLICT (guest_id, stack) DO UPDATE SET controller_id = excluded.controller_id,
           registered_at = CASE WHEN stacks.controller_id = excluded.controller_id THEN stacks.registered_at ELSE excluded.registered_at END,
           lease_expires_at = excluded.lease_expires_at`,
      ),
      leaseOf: db.prepare("SELECT controller_id, lease_expires_at FROM stacks WHERE guest_id = ? AND stack = ?"),
      deleteLease: db.prepare("DELETE FROM stacks WHERE guest_id = ? AND stack = ? AND controller_id = ?"),
      liveStacks: db.prepare("SELECT stack FROM stacks WHERE guest_id = ? AND lease_expires_at > ? ORDER BY stack"),
      lapsedStacks: db.prepare(
        "SELECT stack, lease_expires_at FROM stacks WHERE guest_id = ? AND lease_expires_at <= ? AND lease_expires_at > ? ORDER BY stack",
      ),
    };
  }

  close(): void {
    this.database.close();
  }

  get epoch(): number {
    return this.database.epoch;
  }

  /** The connection, for the stores of other tables in the same database. */
  get connection(): Db {
    return this.db;
  }

  transaction<T>(fn: () => T): T {
    return this.database.transaction(fn);
  }

  getJob(id: string): JobRecord | undefined {
    return this.hydrate(this.stmt.jobById!.get(id) as JobRow | undefined);
  }

  activeJob(guestId: string): JobRecord | undefined {
    return this.hydrate(this.stmt.activeJob!.get(guestId) as JobRow | undefined);
  }

  nonTerminalJobs(): JobRecord[] {
    return (this.stmt.nonTerminal!.all() as JobRow[]).map((r) => this.hydrate(r) as JobRecord);
  }

  listJobs(query: ListJobsQuery): JobRecord[] {
    const where: string[] = [];
    const args: unknown[] = [];
    if (query.guestId !== undefined) {
      where.push("guest_id = ?");
      args.push(query.guestId);
    }
    if (query.activeOnly) where.push(ACTIVE);
    if (query.before) {
      // A row-value comparison: SQLite reads it as a range of the (created_at, id) indexes (migration 9).
      where.push("(created_at, id) < (?, ?)");
      args.push(query.before.createdAt, query.before.id);
    }
    const sql = `SELECT * FROM jobs ${where.length ? "WHERE " + where.join(" AND ") : ""} ORDER BY created_at DESC, id DESC LIMIT ?`;
    const rows = this.db.prepare(sql).all(...args, query.limit) as JobRow[];
    return rows.map((r) => this.hydrate(r) as JobRecord);
  }

  /**
   * The job already made for `job`'s idempotency key, or undefined when the key is new: the same key
   * for another guest is LULL_E_IDEMPOTENCY_CONFLICT.
   */
  existingFor(job: JobRecord): JobRecord | undefined {
    const existing = this.hydrate(this.stmt.jobByKey!.get(job.idempotencyKey) as JobRow | undefined);
    if (existing && existing.guestId !== job.guestId) {
      throw new LullError("LULL_E_IDEMPOTENCY_CONFLICT", `idempotency key ${job.idempotencyKey} was already used for guest ${existing.guestId}`);
    }
    return existing;
  }

  /** Inserts a new job; a guest with a job that has not ended is LULL_E_GUEST_BUSY (also enforced by a unique index). */
  insertJob(job: JobRecord): void {
    this.transaction(() => {
      const active = this.activeJob(job.guestId);
      if (active) throw busy(job.guestId, active.id);
      try {
        this.stmt.insertJob!.run(jobToRow(job, this.epoch));
      } catch (err) {
        if ((err as { code?: string }).code === "SQLITE_CONSTRAINT_UNIQUE") throw busy(job.guestId, "(unknown)", err);
        throw err;
      }
      this.writeStacks(job);
    });
  }

  /**
   * Writes a changed job, fenced by this store's epoch. With `previous` (the job as read in this
   * transaction) only the stacks the change replaced are written: the machine keeps an unchanged
   * stack as the same object, and a barrier of K stacks then costs K writes, not K².
   */
  updateJob(job: JobRecord, previous?: JobRecord): void {
    this.transaction(() => {
      const result = this.stmt.updateJob!.run(jobToRow(job, this.epoch));
      if (result.changes !== 1) {
        const row = this.stmt.jobById!.get(job.id) as JobRow | undefined;
        if (!row) throw new LullError("LULL_E_JOB_NOT_FOUND", `job ${job.id} does not exist`);
        throw new LullError(
          "LULL_E_AGENT_RESTARTED",
          `job ${job.id} belongs to a newer agent start (epoch ${row.epoch}); this writer (epoch ${this.epoch}) is stale`,
        );
      }
      this.writeStacks(job, previous);
    });
  }

  /** Seeds a job with its events unless its idempotency key is known (tests, tools). */
  createJob(job: JobRecord, events: readonly EventDraft[], now: number): CreateResult {
    return this.transaction(() => {
      const existing = this.existingFor(job);
      if (existing) return { job: existing, created: false, events: [] };
      this.insertJob(job);
      return { job, created: true, events: this.events.append(events, now) };
    });
  }

  /** Seeds a changed job with its events, fenced by the epoch (tests, tools). */
  saveJob(job: JobRecord, events: readonly EventDraft[], now: number): Event[] {
    return this.transaction(() => {
      this.updateJob(job);
      return this.events.append(events, now);
    });
  }

  /** Creates or renews a stack's lease; a new controller id takes the stack over. Returns the previous holder. */
  renewLease(lease: { guestId: string; stack: string; controllerId: string; ttlMs: number }, now: number): string | undefined {
    return this.transaction(() => {
      const prev = this.stmt.leaseOf!.get(lease.guestId, lease.stack) as { controller_id: string } | undefined;
      this.stmt.upsertLease!.run({
        guest_id: lease.guestId,
        stack: lease.stack,
        controller_id: lease.controllerId,
        now,
        expires: now + lease.ttlMs,
      });
      return prev?.controller_id;
    });
  }

  /** Removes a stack's registration if `controllerId` holds it; returns whether it did. */
  dropLease(guestId: string, stack: string, controllerId: string): boolean {
    return this.stmt.deleteLease!.run(guestId, stack, controllerId).changes > 0;
  }

  /** Stacks of a guest whose lease is alive at `now`. */
  liveStacks(guestId: string, now: number): string[] {
    return (this.stmt.liveStacks!.all(guestId, now) as Array<{ stack: string }>).map((r) => r.stack);
  }

  /**
   * Stacks of a guest still registered (never unregistered) whose lease ran out at `now`, within
   * the last `horizonMs`: their controller is unreachable, so a backup cannot quiesce them.
   */
  lapsedStacks(guestId: string, now: number, horizonMs: number): Array<{ stack: string; leaseExpiredAt: number }> {
    const rows = this.stmt.lapsedStacks!.all(guestId, now, now - horizonMs) as Array<{ stack: string; lease_expires_at: number }>;
    return rows.map((r) => ({ stack: r.stack, leaseExpiredAt: r.lease_expires_at }));
  }

  private hydrate(row: JobRow | undefined): JobRecord | undefined {
    if (!row) return undefined;
    const stacks = (this.stmt.stacksOf!.all(row.id) as JobStackRow[]).map(stackFromRow);
    return jobFromRow(row, stacks);
  }

  private writeStacks(job: JobRecord, previous?: JobRecord): void {
    const stored = new Set(previous?.id === job.id ? previous.stacks : []);
    for (const s of job.stacks) if (!stored.has(s)) this.stmt.upsertJobStack!.run(stackToRow(job.id, s));
  }
}

function busy(guestId: string, activeId: string, cause?: unknown): LullError {
  return new LullError("LULL_E_GUEST_BUSY", `guest ${guestId} already has a job that has not ended (${activeId})`, { cause });
}
