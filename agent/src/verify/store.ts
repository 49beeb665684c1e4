// Verification runs (`verifications`, migration 10) and each stack's verified marker
// (`stack_verified`: verifiedBackupId, the newest point that passed).
import type { Statement } from "better-sqlite3";
import type { AgentDatabase } from "../ledger/agent-database.js";
import { ENDED, type VerifyRecord } from "./machine.js";

interface Row {
  id: string;
  point_id: string;
  guest_id: string;
  phase: VerifyRecord["phase"];
  started_at: number;
  ended_at: number | null;
  restore_ms: number;
  check_ms: number;
  teardown_ms: number;
  reason: string;
  results: string;
}

export interface StackMarker {
  guestId: string;
  stack: string;
  verifiedBackupId: string;
  verifiedAt: number;
}

export class VerifyStore {
  private readonly stmt: Record<string, Statement>;

  constructor(readonly database: AgentDatabase) {
    const db = database.connection;
    this.stmt = {
      insert: db.prepare(
        `INSERT INTO verifications (id, point_id, guest_id, phase, started_at, ended_at, restore_ms, check_ms, teardown_ms, reason, results, epoch)
         VALUES (@id, @point_id, @guest_id, @phase, @started_at, @ended_at, @restore_ms, @check_ms, @teardown_ms, @reason, @results, @epoch)`,
      ),
      update: db.prepare(
        `UPDATE verifications SET phase = @phase, ended_at = @ended_at, restore_ms = @restore_ms, check_ms = @check_ms,
           teardown_ms = @teardown_ms, reason = @reason, results = @results, epoch = @epoch WHERE id = @id`,
      ),
      byId: db.prepare("SELECT * FROM verifications WHERE id = ?"),
      ofPoint: db.prepare("SELECT * FROM verifications WHERE point_id = ? ORDER BY started_at DESC, id DESC"),
      ofGuest: db.prepare("SELECT * FROM verifications WHERE guest_id = ? ORDER BY started_at DESC, id DESC LIMIT ?"),
      open: db.prepare(`SELECT * FROM verifications WHERE phase NOT IN (${ENDED.map((p) => `'${p}'`).join(", ")})`),
      mark: db.prepare(
        `INSERT INTO stack_verified (guest_id, stack, verified_backup_id, verified_at) VALUES (?, ?, ?, ?)
         ON CONFLICT (guest_id, stack) DO UPDATE SET verified_backup_id = excluded.verified_backup_id, verified_at = excluded.verified_at`,
      ),
      markers: db.prepare("SELECT * FROM stack_verified WHERE guest_id = ? ORDER BY stack"),
      passedStacks: db.prepare("SELECT point_id, results FROM verifications WHERE guest_id = ? AND phase = 'passed'"),
    };
  }

  private params(r: VerifyRecord) {
    return {
      id: r.id,
      point_id: r.pointId,
      guest_id: r.guestId,
      phase: r.phase,
      started_at: r.startedAt,
      ended_at: r.endedAt ?? null,
      restore_ms: r.restoreMs,
      check_ms: r.checkMs,
      teardown_ms: r.teardownMs,
      reason: r.reason,
      results: JSON.stringify(r.results),
      epoch: this.database.epoch,
    };
  }

  insert(r: VerifyRecord): void {
    this.stmt.insert!.run(this.params(r));
  }

  save(r: VerifyRecord): void {
    this.stmt.update!.run(this.params(r));
  }

  get(id: string): VerifyRecord | undefined {
    const row = this.stmt.byId!.get(id) as Row | undefined;
    return row && fromRow(row);
  }

  /** A point's runs, newest first. */
  ofPoint(pointId: string): VerifyRecord[] {
    return (this.stmt.ofPoint!.all(pointId) as Row[]).map(fromRow);
  }

  /** A guest's runs, newest first. */
  ofGuest(guestId: string, limit: number): VerifyRecord[] {
    return (this.stmt.ofGuest!.all(guestId, limit) as Row[]).map(fromRow);
  }

  /** Runs that had not ended (the agent stopped during them). */
  open(): VerifyRecord[] {
    return (this.stmt.open!.all() as Row[]).map(fromRow);
  }

  /** Moves a stack's verified marker to `pointId` (call only for a point newer than the marker's). */
  mark(guestId: string, stack: string, pointId: string, at: number): void {
    this.stmt.mark!.run(guestId, stack, pointId, at);
  }

  markers(guestId: string): StackMarker[] {
    return (this.stmt.markers!.all(guestId) as Array<{ guest_id: string; stack: string; verified_backup_id: string; verified_at: number }>).map((m) => ({
      guestId: m.guest_id,
      stack: m.stack,
      verifiedBackupId: m.verified_backup_id,
      verifiedAt: m.verified_at,
    }));
  }

  /** For each point of the guest, the stacks that passed a verification on it (retention's input). */
  passedStacksByPoint(guestId: string): Map<string, string[]> {
    const out = new Map<string, string[]>();
    for (const row of this.stmt.passedStacks!.all(guestId) as Array<{ point_id: string; results: string }>) {
      const stacks = (JSON.parse(row.results) as Array<{ stack: string; ok: boolean }>).filter((r) => r.ok).map((r) => r.stack);
      out.set(row.point_id, [...new Set([...(out.get(row.point_id) ?? []), ...stacks])]);
    }
    return out;
  }
}

function fromRow(row: Row): VerifyRecord {
  return {
    id: row.id,
    pointId: row.point_id,
    guestId: row.guest_id,
    phase: row.phase,
    startedAt: row.started_at,
    endedAt: row.ended_at ?? undefined,
    restoreMs: row.restore_ms,
    checkMs: row.check_ms,
    teardownMs: row.teardown_ms,
    reason: row.reason,
    verdict: ENDED.includes(row.phase) ? (row.phase as VerifyRecord["verdict"]) : undefined,
    results: JSON.parse(row.results) as VerifyRecord["results"],
  };
}
