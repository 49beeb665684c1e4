// The event log: every change of every record kind is described by events with a per-node
// sequence number, appended in the transaction that made the change. Watchers read it back from
// any sequence number; retention may delete old events but never reuses their numbers.
import type { Statement } from "better-sqlite3";
import { Consistency, EventKind, Phase, SnapshotMode, StackState, type Event } from "@lull/proto";
import type { AgentDatabase } from "./agent-database.js";
import { dateOf, millisOf } from "./columns.js";

/** An event before the log gave it a sequence number and a time. */
export type EventDraft = Omit<Event, "seq" | "at">;

/** A NOTE event of a record that is not a backup job (a verification, a restore, a schedule tick): only ids, message and code. */
export function noteDraft(n: { jobId: string; guestId: string; message: string; errorCode?: string; kind?: EventKind; bytesDone?: number; bytesTotal?: number }): EventDraft {
  return {
    jobId: n.jobId,
    guestId: n.guestId,
    kind: n.kind ?? EventKind.EVENT_KIND_NOTE,
    phase: Phase.PHASE_UNSPECIFIED,
    mode: SnapshotMode.SNAPSHOT_MODE_UNSPECIFIED,
    consistency: Consistency.CONSISTENCY_UNSPECIFIED,
    snapshotAt: undefined,
    bytesDone: n.bytesDone ?? 0,
    bytesTotal: n.bytesTotal ?? 0,
    stack: "",
    stackState: StackState.STACK_STATE_UNSPECIFIED,
    downtimeMs: 0,
    errorCode: n.errorCode ?? "",
    message: n.message,
  };
}

export interface EventQuery {
  afterSeq: number;
  guestId?: string | undefined;
  jobId?: string | undefined;
  groupRunId?: string | undefined;
  /** Only what this stack's controller acts on: STACK events of this stack, no PROGRESS events (`concernsStack`, in SQL). */
  forStack?: string | undefined;
  limit: number;
}

/** The `pruned_events` scope of every event (guest ids never contain `*`). */
export const PRUNED_ANY_GUEST = "*";

interface EventRow {
  seq: number;
  at: number;
  job_id: string;
  guest_id: string;
  kind: number;
  phase: number;
  mode: number;
  consistency: number;
  snapshot_at: number | null;
  bytes_done: number;
  bytes_total: number;
  stack: string;
  stack_state: number;
  downtime_ms: number;
  error_code: string;
  message: string;
  /** '' when the event belongs to no group run (migration 4). */
  group_run_id: string;
}

export class EventLog {
  private readonly stmt: Record<string, Statement>;
  private readonly afterStatements = new Map<string, Statement>();

  constructor(private readonly database: AgentDatabase) {
    const db = database.connection;
    this.stmt = {
      insert: db.prepare(
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
    };
  }

  /** Appends events (inside the caller's transaction when there is one); returns them with their sequence numbers. */
  append(drafts: readonly EventDraft[], at: number): Event[] {
    return this.database.transaction(() =>
      drafts.map((draft) => {
        const row = eventToRow(draft, at);
        const seq = Number(this.stmt.insert!.run(row).lastInsertRowid);
        return eventFromRow({ seq, ...row });
      }),
    );
  }

  /** Persisted events with seq > afterSeq, oldest first. */
  after(query: EventQuery): Event[] {
    const where = ["seq > ?"];
    const args: unknown[] = [query.afterSeq];
    for (const [column, value] of [["guest_id", query.guestId], ["job_id", query.jobId], ["group_run_id", query.groupRunId]] as const) {
      if (value === undefined) continue;
      where.push(`${column} = ?`);
      args.push(value);
    }
    if (query.forStack !== undefined) {
      where.push(`kind != ${EventKind.EVENT_KIND_PROGRESS} AND (kind != ${EventKind.EVENT_KIND_STACK} OR stack = ?)`);
      args.push(query.forStack);
    }
    const sql = `SELECT ${RAW_COLUMNS} FROM events WHERE ${where.join(" AND ")} ORDER BY seq LIMIT ?`;
    // One prepared statement per filter shape (sixteen at most): a node's controllers reconnecting
    // at once read their backlogs without compiling the query each time. Rows come back as arrays
    // (better-sqlite3 builds an object with named keys per row otherwise, half of a replay's read).
    let statement = this.afterStatements.get(sql);
    if (!statement) this.afterStatements.set(sql, (statement = this.database.connection.prepare(sql).raw(true)));
    return (statement.all(...args, query.limit) as RawEventRow[]).map(eventFromRawRow);
  }

  lastSeq(): number {
    return (this.stmt.lastSeq!.get() as { seq: number }).seq;
  }

  /**
   * The newest sequence number that retention deleted from `guestId`'s events (every event's when
   * undefined), 0 when none was: a watcher positioned before it may have missed events.
   */
  prunedThrough(guestId?: string): number {
    const row = this.stmt.prunedThrough!.get(guestId ?? PRUNED_ANY_GUEST) as { through_seq: number } | undefined;
    return row?.through_seq ?? 0;
  }
}

function eventToRow(e: EventDraft, at: number): Omit<EventRow, "seq"> {
  return {
    at,
    job_id: e.jobId,
    guest_id: e.guestId,
    kind: e.kind,
    phase: e.phase,
    mode: e.mode,
    consistency: e.consistency,
    snapshot_at: millisOf(e.snapshotAt),
    bytes_done: e.bytesDone,
    bytes_total: e.bytesTotal,
    stack: e.stack,
    stack_state: e.stackState,
    downtime_ms: e.downtimeMs,
    error_code: e.errorCode,
    message: e.message,
    group_run_id: e.groupRunId ?? "",
  };
}

/** The columns of `RawEventRow`, in its order. */
const RAW_COLUMNS =
  "seq, at, job_id, guest_id, kind, phase, mode, consistency, snapshot_at, bytes_done, bytes_total, stack, stack_state, downtime_ms, error_code, message, group_run_id";
type RawEventRow = [
  seq: number, at: number, jobId: string, guestId: string, kind: number, phase: number, mode: number, consistency: number,
  snapshotAt: number | null, bytesDone: number, bytesTotal: number, stack: string, stackState: number, downtimeMs: number,
  errorCode: string, message: string, groupRunId: string,
];

function eventFromRawRow(r: RawEventRow): Event {
  const event: Event = {
    seq: r[0],
    at: new Date(r[1]),
    jobId: r[2],
    guestId: r[3],
    kind: r[4],
    phase: r[5],
    mode: r[6],
    consistency: r[7],
    snapshotAt: dateOf(r[8]),
    bytesDone: r[9],
    bytesTotal: r[10],
    stack: r[11],
    stackState: r[12],
    downtimeMs: r[13],
    errorCode: r[14],
    message: r[15],
  };
  if (r[16]) event.groupRunId = r[16];
  return event;
}

function eventFromRow(row: EventRow): Event {
  return {
    seq: row.seq,
    at: new Date(row.at),
    jobId: row.job_id,
    guestId: row.guest_id,
    kind: row.kind,
    phase: row.phase,
    mode: row.mode,
    consistency: row.consistency,
    snapshotAt: dateOf(row.snapshot_at),
    bytesDone: row.bytes_done,
    bytesTotal: row.bytes_total,
    stack: row.stack,
    stackState: row.stack_state,
    downtimeMs: row.downtime_ms,
    errorCode: row.error_code,
    message: row.message,
    ...(row.group_run_id ? { groupRunId: row.group_run_id } : {}),
  };
}
