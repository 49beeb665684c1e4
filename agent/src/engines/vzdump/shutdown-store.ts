// Guests vzdump shut down in stop mode (table `vzdump_shutdowns`, migration 5), in the agent's
// database. The vzdump run writes a row at the hook's `pre-stop` in stop mode — before the hook
// lets vzdump go on to the shutdown (durable intent) — and closes it at `post-restart`, when vzdump
// has started the guest again. A row still open after its job ended means vzdump died between the
// shutdown and the restart: the crash cleanup (../../pve/cleanup.ts, ../../pve/guest-restart.ts) decides whether
// to start the guest, records what it did (`settled_at`, `outcome`), and the outcome is put on the
// job as a note (`noted_at`) as soon as the job ledger is there.
//
// The Proxmox side opens its own connection to the agent's database file (WAL), as the token store
// does: it exists before the job ledger, because the start-up cleanup runs before the agent serves.
import type { Database as Db, Statement } from "better-sqlite3";
import type { VzdumpShutdownRow } from "../../jobs/rows.js";
import type { Clock } from "@lull/shared";
import type { GuestType } from "../../pve/guest-config.js";
import type { ShutdownRecords, VzdumpShutdown } from "../../pve/shutdown-records.js";
import type { StopModeRecorder } from "./run.js";


const TERMINAL = "('done', 'failed', 'cancelled')";

function fromRow(row: VzdumpShutdownRow): VzdumpShutdown {
  return {
    jobId: row.job_id,
    vmid: row.vmid,
    vmtype: row.vmtype,
    shutdownAt: row.shutdown_at,
    restartBegunAt: row.restart_begun_at ?? undefined,
    restartedAt: row.restarted_at ?? undefined,
    stopReturnedAt: row.stop_returned_at ?? undefined,
    releasedAt: row.released_at ?? undefined,
    settledAt: row.settled_at ?? undefined,
    outcome: row.outcome,
    notedAt: row.noted_at ?? undefined,
  };
}

export type { VzdumpShutdown };

export class VzdumpShutdownStore implements ShutdownRecords {
  private readonly stmt: Record<
    "insert" | "restartBegun" | "restarted" | "stopReturned" | "released" | "byJob" | "open" | "running" | "settle" | "unnoted" | "noted",
    Statement
  >;

  /** On the agent's open connection (the job store's); its owner closes it. */
  constructor(private readonly db: Db) {
    this.stmt = {
      insert: db.prepare(
        `INSERT INTO vzdump_shutdowns (job_id, vmid, vmtype, shutdown_at) VALUES (?, ?, ?, ?)
         ON CONFLICT (job_id) DO NOTHING`,
      ),
      restartBegun: db.prepare("UPDATE vzdump_shutdowns SET restart_begun_at = ? WHERE job_id = ? AND restart_begun_at IS NULL"),
      restarted: db.prepare("UPDATE vzdump_shutdowns SET restarted_at = ? WHERE job_id = ? AND restarted_at IS NULL"),
      stopReturned: db.prepare("UPDATE vzdump_shutdowns SET stop_returned_at = ? WHERE job_id = ? AND stop_returned_at IS NULL"),
      released: db.prepare("UPDATE vzdump_shutdowns SET released_at = ? WHERE job_id = ? AND released_at IS NULL"),
      byJob: db.prepare("SELECT * FROM vzdump_shutdowns WHERE job_id = ?"),
      open: db.prepare(
        `SELECT s.* FROM vzdump_shutdowns s JOIN jobs j ON j.id = s.job_id
         WHERE s.restarted_at IS NULL AND s.settled_at IS NULL AND (j.phase IN ${TERMINAL} OR s.job_id = ?)
         ORDER BY s.shutdown_at, s.job_id`,
      ),
      running: db.prepare(
        `SELECT s.* FROM vzdump_shutdowns s JOIN jobs j ON j.id = s.job_id
         WHERE s.restarted_at IS NULL AND s.settled_at IS NULL AND j.phase NOT IN ${TERMINAL} AND s.job_id <> ?
         ORDER BY s.shutdown_at, s.job_id`,
      ),
      settle: db.prepare("UPDATE vzdump_shutdowns SET settled_at = ?, outcome = ? WHERE job_id = ? AND settled_at IS NULL"),
      unnoted: db.prepare("SELECT * FROM vzdump_shutdowns WHERE settled_at IS NOT NULL AND noted_at IS NULL ORDER BY settled_at, job_id"),
      noted: db.prepare("UPDATE vzdump_shutdowns SET noted_at = ? WHERE job_id = ?"),
    };
  }

  /** `pre-stop` in stop mode: vzdump shuts the guest down once the hook answers. */
  recordShutdown(jobId: string, vmid: number, vmtype: GuestType, at: number): void {
    this.stmt.insert.run(jobId, vmid, vmtype, at);
  }

  /** `pre-restart` in stop mode: vzdump's cleanup (it unlocked the guest) is about to start it. */
  recordRestartBegun(jobId: string, at: number): void {
    this.stmt.restartBegun.run(at, jobId);
  }

  /** `post-restart` in stop mode: vzdump started the guest again. */
  recordRestarted(jobId: string, at: number): void {
    this.stmt.restarted.run(at, jobId);
  }

  /** stop mode: vzdump's archive line after the shutdown (stop_vm returned; its restart flag is set). */
  recordStopReturned(jobId: string, at: number): void {
    this.stmt.stopReturned.run(at, jobId);
  }

  recordReleased(jobId: string, at: number): void {
    this.stmt.released.run(at, jobId);
  }

  get(jobId: string): VzdumpShutdown | undefined {
    const row = this.stmt.byJob.get(jobId) as VzdumpShutdownRow | undefined;
    return row ? fromRow(row) : undefined;
  }

  /** Shutdowns vzdump did not undo and the cleanup has not settled: of ended jobs, and of `endingJobId`. */
  open(endingJobId = ""): VzdumpShutdown[] {
    return (this.stmt.open.all(endingJobId) as VzdumpShutdownRow[]).map(fromRow);
  }

  /** Open shutdowns of jobs that still run (not `endingJobId`): their guests are left to those runs. */
  ofRunningJobs(endingJobId = ""): VzdumpShutdown[] {
    return (this.stmt.running.all(endingJobId) as VzdumpShutdownRow[]).map(fromRow);
  }

  /** The cleanup decided (started the guest, or left it): `outcome` is the job's note. */
  settle(jobId: string, outcome: string, at: number): void {
    this.stmt.settle.run(at, outcome, jobId);
  }

  /** Settled shutdowns whose outcome is not on their job yet. */
  unnoted(): VzdumpShutdown[] {
    return (this.stmt.unnoted.all() as VzdumpShutdownRow[]).map(fromRow);
  }

  markNoted(jobId: string, at: number): void {
    this.stmt.noted.run(at, jobId);
  }
}

/** The recorder a VzdumpRun of job `jobId` writes the guest's stop-mode shutdown and restart with. */
export function stopModeRecorder(store: VzdumpShutdownStore, run: { jobId: string; vmid: number; vmtype: GuestType }, clock: Clock): StopModeRecorder {
  return {
    shuttingDown: () => store.recordShutdown(run.jobId, run.vmid, run.vmtype, clock.now()),
    restartBegun: () => store.recordRestartBegun(run.jobId, clock.now()),
    restarted: () => store.recordRestarted(run.jobId, clock.now()),
    stopReturned: () => store.recordStopReturned(run.jobId, clock.now()),
  };
}
