// The restore points (`backups`, migration 8) in the agent's database. No foreign key ties a point
// to its job: pruning job history never removes the record of a backup that exists.
import type { Statement } from "better-sqlite3";
import type { AgentDatabase } from "../ledger/agent-database.js";
import { dateOf, millisOf } from "../ledger/columns.js";
import type { IntegrityResult, LocationKind, PointOrigin, RestorePoint } from "./restore-point.js";

interface BackupRow {
  id: string;
  job_id: string;
  guest_id: string;
  group_run_id: string;
  engine: string;
  mode: number;
  consistency: number;
  snapshot_at: number | null;
  created_at: number;
  location_kind: LocationKind;
  location: string;
  size_bytes: number;
  stacks: string;
  protected: number;
  notes: string;
  removed_at: number | null;
  origin: PointOrigin;
  sha256: string;
  file_count: number | null;
  total_bytes: number | null;
  integrity_state: IntegrityResult["state"] | null;
  integrity_detail: string;
  integrity_at: number | null;
}

export interface ListPointsQuery {
  guestId?: string | undefined;
  limit: number;
}

export class BackupStore {
  private readonly stmt: Record<string, Statement>;

  constructor(private readonly database: AgentDatabase) {
    const db = database.connection;
    this.stmt = {
      insert: db.prepare(
        `INSERT INTO backups (id, job_id, guest_id, group_run_id, engine, mode, consistency, snapshot_at, created_at,
           location_kind, location, size_bytes, stacks, protected, notes, origin, sha256, file_count, total_bytes,
           integrity_state, integrity_detail, integrity_at)
         VALUES (@id, @job_id, @guest_id, @group_run_id, @engine, @mode, @consistency, @snapshot_at, @created_at,
           @location_kind, @location, @size_bytes, @stacks, @protected, @notes, @origin, @sha256, @file_count, @total_bytes,
           @integrity_state, @integrity_detail, @integrity_at)`,
      ),
      byId: db.prepare("SELECT * FROM backups WHERE id = ?"),
      byJob: db.prepare("SELECT * FROM backups WHERE job_id = ?"),
      setProtected: db.prepare("UPDATE backups SET protected = ? WHERE id = ? AND removed_at IS NULL"),
      setNotes: db.prepare("UPDATE backups SET notes = ? WHERE id = ? AND removed_at IS NULL"),
      setIntegrity: db.prepare("UPDATE backups SET integrity_state = ?, integrity_detail = ?, integrity_at = ? WHERE id = ?"),
      markRemoved: db.prepare("UPDATE backups SET removed_at = ? WHERE id = ? AND removed_at IS NULL"),
    };
  }

  /** Records a point; call inside the transaction that ends its job. */
  insert(point: RestorePoint): void {
    this.stmt.insert!.run({
      id: point.id,
      job_id: point.jobId,
      guest_id: point.guestId,
      group_run_id: point.groupRunId,
      engine: point.engine,
      mode: point.mode,
      consistency: point.consistency,
      snapshot_at: millisOf(point.snapshotAt),
      created_at: point.createdAt.getTime(),
      location_kind: point.locationKind,
      location: point.location,
      size_bytes: point.sizeBytes,
      stacks: JSON.stringify(point.stacks),
      protected: point.protected ? 1 : 0,
      notes: point.notes,
      origin: point.origin,
      sha256: point.sha256,
      file_count: point.manifest?.fileCount ?? null,
      total_bytes: point.manifest?.totalBytes ?? null,
      integrity_state: point.integrity?.state ?? null,
      integrity_detail: point.integrity?.detail ?? "",
      integrity_at: millisOf(point.integrity?.at),
    });
  }

  /** Sets a live point's protected flag (retention never removes a protected point); false if there is no such live point. */
  setProtected(id: string, value: boolean): boolean {
    return this.stmt.setProtected!.run(value ? 1 : 0, id).changes === 1;
  }

  setNotes(id: string, notes: string): boolean {
    return this.stmt.setNotes!.run(notes, id).changes === 1;
  }

  /** Records the outcome of an integrity check on the point. */
  setIntegrity(id: string, result: IntegrityResult): void {
    this.stmt.setIntegrity!.run(result.state, result.detail, result.at.getTime(), id);
  }

  /** Marks a point removed (its data was deleted by prune); the row stays for history. */
  markRemoved(id: string, at: number): void {
    this.stmt.markRemoved!.run(at, id);
  }

  get(id: string): RestorePoint | undefined {
    const row = this.stmt.byId!.get(id) as BackupRow | undefined;
    return row ? pointFromRow(row) : undefined;
  }

  ofJob(jobId: string): RestorePoint | undefined {
    const row = this.stmt.byJob!.get(jobId) as BackupRow | undefined;
    return row ? pointFromRow(row) : undefined;
  }

  /** Points that exist (not removed), newest first. */
  list(query: ListPointsQuery): RestorePoint[] {
    const where = ["removed_at IS NULL"];
    const args: unknown[] = [];
    if (query.guestId !== undefined) {
      where.push("guest_id = ?");
      args.push(query.guestId);
    }
    const sql = `SELECT * FROM backups WHERE ${where.join(" AND ")} ORDER BY created_at DESC, id DESC LIMIT ?`;
    return (this.database.connection.prepare(sql).all(...args, query.limit) as BackupRow[]).map(pointFromRow);
  }

  /** When the guest's oldest point that exists was made (ms), undefined without one. */
  firstCreatedAt(guestId: string): number | undefined {
    const row = this.database.connection.prepare("SELECT MIN(created_at) AS at FROM backups WHERE guest_id = ? AND removed_at IS NULL").get(guestId) as { at: number | null };
    return row.at ?? undefined;
  }
}

function pointFromRow(row: BackupRow): RestorePoint {
  return {
    id: row.id,
    jobId: row.job_id,
    guestId: row.guest_id,
    groupRunId: row.group_run_id,
    engine: row.engine,
    mode: row.mode,
    consistency: row.consistency,
    snapshotAt: dateOf(row.snapshot_at),
    createdAt: new Date(row.created_at),
    locationKind: row.location_kind,
    location: row.location,
    sizeBytes: row.size_bytes,
    stacks: JSON.parse(row.stacks) as RestorePoint["stacks"],
    protected: row.protected === 1,
    notes: row.notes,
    origin: row.origin,
    sha256: row.sha256,
    manifest: row.file_count === null || row.total_bytes === null ? undefined : { fileCount: row.file_count, totalBytes: row.total_bytes },
    integrity:
      row.integrity_state === null ? undefined : { state: row.integrity_state, detail: row.integrity_detail, at: new Date(row.integrity_at ?? 0) },
  };
}
