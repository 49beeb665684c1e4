// The agent's durable state in SQLite (better-sqlite3): jobs, the stacks of each job's
// barrier, registered stacks with leases, and the event log. Every method is synchronous;
// a job and the events describing its change are written in one transaction.
//
// Fencing: each open starts a new epoch. Job writes carry the writer's epoch and only
// succeed on rows whose epoch is not newer, so a runner of an older agent start cannot
// overwrite what a newer one (or its recovery) decided.
import type { Database as Db, Statement } from "better-sqlite3";
import type { Event } from "@lull/proto";
import { LullError } from "@lull/shared";
import type { EventDraft, JobRecord } from "./job.js";
import { openAgentDatabase } from "./database.js";
import {
  eventFromRow,
  eventToRow,
  jobFromRow,
  jobToRow,
  stackFromRow,
  stackToRow,
  type EventRow,
  type JobRow,
  type JobStackRow,
} from "./rows.js";

export interface JobStoreOptions {
  /** How long a write waits for a lock held by another connection. Default 5000 ms. */
  busyTimeoutMs?: number;
  /** Clock for the epoch's start time. */
  now?: () => number;
}

export interface ListJobsQuery {
  guestId?: string | undefined;
  activeOnly?: boolean;
  limit: number;
}

export interface EventQuery {
  afterSeq: number;
  guestId?: string | undefined;
  jobId?: string | undefined;
  groupRunId?: string | undefined;
  limit: number;
}

export interface CreateResult {
  job: JobRecord;
  created: boolean;
  events: Event[];
}

const JOB_COLUMNS: readonly (keyof JobRow)[] = [
  "id", "guest_id", "idempotency_key", "phase", "engine", "mode", "consistency", "policy", "created_at", "updated_at",
  "phase_since", "snapshot_at", "finished_at", "failed_in", "error_code", "error_message", "archive_path",
  "archive_bytes", "bytes_done", "bytes_total", "quiesce_ms", "snapshot_ms", "archive_ms", "total_ms",
  "quiesce_timeout_ms", "requested_by", "epoch", "group_run_id",
];

const ACTIVE = "phase NOT IN ('done', 'failed', 'cancelled')";

/** The `pruned_events` scope of every event (guest ids never contain `*`). */
export const PRUNED_ANY_GUEST = "*";

export class JobStore {
  readonly epoch: number;
  private readonly db: Db;
  private readonly stmt: Record<string, Statement>;

  static open(path: string, options: JobStoreOptions = {}): JobStore {
    const db = openAgentDatabase(path, options);
    try {
      const started = (options.now ?? Date.now)();
      const epoch = Number(db.prepare("INSERT INTO agent_epochs (started_at) VALUES (?)").run(started).lastInsertRowid);
      return new JobStore(db, epoch);
    } catch (err) {
      db.close();
      throw err;
    }
  }

  private constructor(db: Db, epoch: number) {
    this.db = db;
    this.epoch = epoch;
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
      insertEvent: db.prepare(
        `INSERT INTO events (at, job_id, guest_id, kind, phase, mode, consistency, snapshot_at, bytes_done, bytes_total,
           stack, stack_state, downtime_ms, error_code, message, group_run_id)
         VALUES (@at, @job_id, @guest_id, @kind, @phase, @mode, @consistency, @snapshot_at, @bytes_done, @bytes_total,
           @stack, @stack_state, @downtime_ms, @error_code, @message, @group_run_id)`,
      ),
      // AUTOINCREMENT's counter too: retention may have deleted the newest events, never their numbers.
      lastSeq: db.prepare(
        `SELECT MAX(COALESCE((SELECT MAX(seq) FROM events), 0),
                    COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'events'), 0)) AS seq`,
      ),
      prunedThrough: db.prepare("SELECT through_seq FROM pruned_events WHERE scope = ?"),
      recordArchive: db.prepare(
        `UPDATE jobs SET archive_path = ?, archive_bytes = ? WHERE id = ? AND epoch <= ? AND ${ACTIVE}`,
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
    if (this.db.open) this.db.close();
  }

  /** The connection, for the stores of other tables in the same database (group runs share its transactions). */
  get connection(): Db {
    return this.db;
  }

  /** Runs `fn` in one IMMEDIATE transaction (nested calls become savepoints). `fn` must not await. */
  transaction<T>(fn: () => T): T {
    if (this.db.inTransaction) return this.db.transaction(fn)();
    return this.db.transaction(fn).immediate();
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
    const sql = `SELECT * FROM jobs ${where.length ? "WHERE " + where.join(" AND ") : ""} ORDER BY created_at DESC, id DESC LIMIT ?`;
    const rows = this.db.prepare(sql).all(...args, query.limit) as JobRow[];
    return rows.map((r) => this.hydrate(r) as JobRecord);
  }

  /**
   * Creates a job unless its idempotency key is known: the same key for the same guest returns
   * the existing job (created = false); for another guest it is LULL_E_IDEMPOTENCY_CONFLICT.
   * A guest with a job that has not ended is LULL_E_GUEST_BUSY (also enforced by a unique index).
   */
  createJob(job: JobRecord, events: readonly EventDraft[], now: number): CreateResult {
    return this.transaction(() => {
      const existing = this.hydrate(this.stmt.jobByKey!.get(job.idempotencyKey) as JobRow | undefined);
      if (existing) {
        if (existing.guestId !== job.guestId) {
          throw new LullError(
            "LULL_E_IDEMPOTENCY_CONFLICT",
            `idempotency key ${job.idempotencyKey} was already used for guest ${existing.guestId}`,
          );
        }
        return { job: existing, created: false, events: [] };
      }
      const active = this.activeJob(job.guestId);
      if (active) throw busy(job.guestId, active.id);
      try {
        this.stmt.insertJob!.run(jobToRow(job, this.epoch));
      } catch (err) {
        if ((err as { code?: string }).code === "SQLITE_CONSTRAINT_UNIQUE") throw busy(job.guestId, "(unknown)", err);
        throw err;
      }
      this.writeStacks(job);
      return { job, created: true, events: this.appendEvents(events, now) };
    });
  }

  /** Writes a changed job and the events describing the change, fenced by this store's epoch. */
  saveJob(job: JobRecord, events: readonly EventDraft[], now: number): Event[] {
    return this.transaction(() => {
      const result = this.stmt.updateJob!.run(jobToRow(job, this.epoch));
      if (result.changes !== 1) {
        const row = this.stmt.jobById!.get(job.id) as JobRow | undefined;
        if (!row) throw new LullError("LULL_E_JOB_NOT_FOUND", `job ${job.id} does not exist`);
        throw new LullError(
          "LULL_E_AGENT_RESTARTED",
          `job ${job.id} belongs to a newer agent start (epoch ${row.epoch}); this writer (epoch ${this.epoch}) is stale`,
        );
      }
      this.writeStacks(job);
      return this.appendEvents(events, now);
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

  /** Persisted events with seq > afterSeq, oldest first. */
  eventsAfter(query: EventQuery): Event[] {
    const where = ["seq > ?"];
    const args: unknown[] = [query.afterSeq];
    if (query.guestId !== undefined) {
      where.push("guest_id = ?");
      args.push(query.guestId);
    }
    if (query.jobId !== undefined) {
      where.push("job_id = ?");
      args.push(query.jobId);
    }
    if (query.groupRunId !== undefined) {
      where.push("group_run_id = ?");
      args.push(query.groupRunId);
    }
    const sql = `SELECT * FROM events WHERE ${where.join(" AND ")} ORDER BY seq LIMIT ?`;
    return (this.db.prepare(sql).all(...args, query.limit) as EventRow[]).map(eventFromRow);
  }

  lastEventSeq(): number {
    return (this.stmt.lastSeq!.get() as { seq: number }).seq;
  }

  /**
   * The newest sequence number that retention deleted from `guestId`'s events (every event's when
   * undefined), 0 when none was: a watcher positioned before it may have missed events.
   */
  prunedThroughSeq(guestId?: string): number {
    const row = this.stmt.prunedThrough!.get(guestId ?? PRUNED_ANY_GUEST) as { through_seq: number } | undefined;
    return row?.through_seq ?? 0;
  }

  /**
   * Records an archive found complete on disk on a job that has not ended (start-up recovery, before
   * it settles the job), fenced like every job write. Returns whether the job took it.
   */
  recordFoundArchive(jobId: string, archivePath: string, archiveBytes: number): boolean {
    return this.stmt.recordArchive!.run(archivePath, archiveBytes, jobId, this.epoch).changes === 1;
  }

  private hydrate(row: JobRow | undefined): JobRecord | undefined {
    if (!row) return undefined;
    const stacks = (this.stmt.stacksOf!.all(row.id) as JobStackRow[]).map(stackFromRow);
    return jobFromRow(row, stacks);
  }

  private writeStacks(job: JobRecord): void {
    for (const s of job.stacks) this.stmt.upsertJobStack!.run(stackToRow(job.id, s));
  }

  /** Appends events (inside the caller's transaction when there is one); returns them with their sequence numbers. */
  appendEvents(drafts: readonly EventDraft[], at: number): Event[] {
    return drafts.map((draft) => {
      const row = eventToRow(draft, at);
      const seq = Number(this.stmt.insertEvent!.run(row).lastInsertRowid);
      return eventFromRow({ seq, ...row });
    });
  }
}

function busy(guestId: string, activeId: string, cause?: unknown): LullError {
  return new LullError("LULL_E_GUEST_BUSY", `guest ${guestId} already has a job that has not ended (${activeId})`, { cause });
}
