// Restore runs (`restores`, migration 13).
import type { Statement } from "better-sqlite3";
import type { AgentDatabase } from "../ledger/agent-database.js";
import { ENDED, targetValue, type RestoreRecord } from "./machine.js";

interface Row {
  id: string;
  point_id: string;
  guest_id: string;
  phase: RestoreRecord["phase"];
  target_kind: "dir" | "guest" | "in-place";
  target: string;
  options: string;
  force: number;
  started_at: number;
  ended_at: number | null;
  bytes_done: number;
  bytes_total: number;
  files: number;
  bytes: number;
  sha256: string;
  error_code: string;
  reason: string;
  check_ms: number;
  extract_ms: number;
  requested_by: string;
}

export class RestoreStore {
  private readonly stmt: Record<string, Statement>;

  constructor(readonly database: AgentDatabase) {
    const db = database.connection;
    const columns = "id, point_id, guest_id, phase, target_kind, target, options, force, started_at, ended_at, bytes_done, bytes_total, files, bytes, sha256, error_code, reason, check_ms, extract_ms, requested_by, epoch";
    this.stmt = {
      insert: db.prepare(`INSERT INTO restores (${columns}) VALUES (${columns.split(", ").map((c) => `@${c}`).join(", ")})`),
      update: db.prepare(
        `UPDATE restores SET phase = @phase, target = @target, options = @options, ended_at = @ended_at, bytes_done = @bytes_done, bytes_total = @bytes_total,
           files = @files, bytes = @bytes, sha256 = @sha256, error_code = @error_code, reason = @reason, check_ms = @check_ms, extract_ms = @extract_ms,
           epoch = @epoch WHERE id = @id`,
      ),
      byId: db.prepare("SELECT * FROM restores WHERE id = ?"),
      ofGuest: db.prepare("SELECT * FROM restores WHERE guest_id = ? ORDER BY started_at DESC, id DESC LIMIT ?"),
      all: db.prepare("SELECT * FROM restores ORDER BY started_at DESC, id DESC LIMIT ?"),
      open: db.prepare(`SELECT * FROM restores WHERE phase NOT IN (${ENDED.map((p) => `'${p}'`).join(", ")}) ORDER BY started_at`),
    };
  }

  private params(r: RestoreRecord) {
    const t = r.target;
    return {
      id: r.id,
      point_id: r.pointId,
      guest_id: r.guestId,
      phase: r.phase,
      target_kind: t.kind,
      target: targetValue(t),
      options: JSON.stringify(t.kind === "guest" ? { storage: t.storage, start: t.start } : t.kind === "dir" ? { created: t.created } : {}),
      force: r.force ? 1 : 0,
      started_at: r.startedAt,
      ended_at: r.endedAt ?? null,
      bytes_done: r.bytesDone,
      bytes_total: r.bytesTotal,
      files: r.files,
      bytes: r.bytes,
      sha256: r.sha256,
      error_code: r.errorCode,
      reason: r.reason,
      check_ms: r.checkMs,
      extract_ms: r.extractMs,
      requested_by: r.requestedBy,
      epoch: this.database.epoch,
    };
  }

  insert(r: RestoreRecord): void {
    this.stmt.insert!.run(this.params(r));
  }

  save(r: RestoreRecord): void {
    this.stmt.update!.run(this.params(r));
  }

  get(id: string): RestoreRecord | undefined {
    const row = this.stmt.byId!.get(id) as Row | undefined;
    return row && fromRow(row);
  }

  /** Newest first; every guest's when `guestId` is empty. */
  list(guestId: string, limit: number): RestoreRecord[] {
    const rows = (guestId ? this.stmt.ofGuest!.all(guestId, limit) : this.stmt.all!.all(limit)) as Row[];
    return rows.map(fromRow);
  }

  /** Runs that had not ended (the agent stopped during them), oldest first. */
  open(): RestoreRecord[] {
    return (this.stmt.open!.all() as Row[]).map(fromRow);
  }
}

function fromRow(row: Row): RestoreRecord {
  const options = JSON.parse(row.options) as { storage?: string; start?: boolean; created?: boolean };
  return {
    id: row.id,
    pointId: row.point_id,
    guestId: row.guest_id,
    target:
      row.target_kind === "dir"
        ? { kind: "dir", path: row.target, created: options.created ?? false }
        : row.target_kind === "in-place"
          ? { kind: "in-place", jobId: row.target }
          : { kind: "guest", vmid: Number(row.target || 0), storage: options.storage ?? "", start: options.start ?? false },
    force: row.force === 1,
    phase: row.phase,
    startedAt: row.started_at,
    endedAt: row.ended_at ?? undefined,
    bytesDone: row.bytes_done,
    bytesTotal: row.bytes_total,
    files: row.files,
    bytes: row.bytes,
    sha256: row.sha256,
    errorCode: row.error_code,
    reason: row.reason,
    checkMs: row.check_ms,
    extractMs: row.extract_ms,
    requestedBy: row.requested_by,
  };
}
