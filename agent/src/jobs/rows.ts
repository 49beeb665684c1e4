// Mapping between SQLite rows and the agent's records. Phases are stored by name
// (readable with the sqlite3 shell); the other enums by their protobuf numbers.
import { Phase, type StackStatus } from "@lull/proto";
import { LullError, phaseFromName, phaseName } from "@lull/shared";
import { dateOf as date, millisOf as millis } from "../ledger/columns.js";
import type { JobRecord } from "./job.js";

/** The kinds of job rows this module reads and writes (migration 7): backups, and restores in place (restore/). */
export const BACKUP_KIND = "backup";
export const RESTORE_KIND = "restore";

export interface JobRow {
  id: string;
  /** The job's kind (migration 7): `backup` for every row of this table's backup jobs. */
  kind: string;
  guest_id: string;
  idempotency_key: string;
  phase: string;
  engine: string;
  mode: number;
  consistency: number;
  policy: number;
  created_at: number;
  updated_at: number;
  phase_since: number;
  snapshot_at: number | null;
  finished_at: number | null;
  failed_in: string | null;
  error_code: string;
  error_message: string;
  archive_path: string;
  archive_bytes: number;
  bytes_done: number;
  bytes_total: number;
  quiesce_ms: number;
  snapshot_ms: number;
  archive_ms: number;
  total_ms: number;
  quiesce_timeout_ms: number;
  requested_by: string;
  epoch: number;
  /** '' when the job is not a member of a group run (migration 4). */
  group_run_id: string;
}

export interface JobStackRow {
  job_id: string;
  stack: string;
  state: number;
  reason: string;
  downtime_ms: number;
  resumed_early: number;
  acknowledged_at: number | null;
  resumed_at: number | null;
  /** Outcome of the controller's post steps ('' when it reported none); migration 2. */
  post_step: string;
}

/**
 * A guest vzdump shut down in stop mode for a job (migration 5): written at the hook's `pre-stop`
 * before vzdump goes on to the shutdown, closed by `post-restart` (vzdump started it again) or by
 * the crash cleanup (`settled_at`, with what it did in `outcome`, put on the job at `noted_at`).
 */
export interface VzdumpShutdownRow {
  job_id: string;
  vmid: number;
  vmtype: "lxc" | "qemu";
  shutdown_at: number;
  /** `pre-restart` seen: vzdump's own cleanup (which unlocks the guest first) reached the restart. */
  restart_begun_at: number | null;
  /** `post-restart` seen: vzdump started the guest again. */
  restarted_at: number | null;
  /** vzdump's archive line came after the shutdown: stop_vm had returned (migration 15). */
  stop_returned_at: number | null;
  /** The guest's lock: backup was released by vzdump's clean-up after this agent's TERM, or by the crash cleanup (migration 15). */
  released_at: number | null;
  settled_at: number | null;
  outcome: string;
  noted_at: number | null;
}


function phaseOf(name: string, jobId: string): Phase {
  const phase = phaseFromName(name);
  if (phase === undefined) throw new LullError("LULL_E_INTERNAL", `job ${jobId} has an unknown phase ${name} in the database`);
  return phase;
}

export function stackFromRow(row: JobStackRow): StackStatus {
  return {
    stack: row.stack,
    state: row.state,
    reason: row.reason,
    downtimeMs: row.downtime_ms,
    resumedEarly: row.resumed_early === 1,
    acknowledgedAt: date(row.acknowledged_at),
    resumedAt: date(row.resumed_at),
    ...(row.post_step ? { postStep: row.post_step } : {}),
  };
}

export function stackToRow(jobId: string, s: StackStatus): JobStackRow {
  return {
    job_id: jobId,
    stack: s.stack,
    state: s.state,
    reason: s.reason,
    downtime_ms: s.downtimeMs,
    resumed_early: s.resumedEarly ? 1 : 0,
    acknowledged_at: millis(s.acknowledgedAt),
    resumed_at: millis(s.resumedAt),
    post_step: s.postStep ?? "",
  };
}

export function jobFromRow(row: JobRow, stacks: StackStatus[]): JobRecord {
  if (row.kind !== BACKUP_KIND && row.kind !== RESTORE_KIND) throw new LullError("LULL_E_INTERNAL", `job ${row.id} is a ${row.kind} job, which this agent does not know`);
  return {
    id: row.id,
    ...(row.kind === RESTORE_KIND ? { kind: RESTORE_KIND } : {}),
    guestId: row.guest_id,
    phase: phaseOf(row.phase, row.id),
    engine: row.engine,
    mode: row.mode,
    consistency: row.consistency,
    policy: row.policy,
    idempotencyKey: row.idempotency_key,
    createdAt: new Date(row.created_at),
    updatedAt: new Date(row.updated_at),
    snapshotAt: date(row.snapshot_at),
    finishedAt: date(row.finished_at),
    failedIn: row.failed_in === null ? Phase.PHASE_UNSPECIFIED : phaseOf(row.failed_in, row.id),
    errorCode: row.error_code,
    errorMessage: row.error_message,
    archivePath: row.archive_path,
    archiveBytes: row.archive_bytes,
    bytesDone: row.bytes_done,
    bytesTotal: row.bytes_total,
    quiesceMs: row.quiesce_ms,
    snapshotMs: row.snapshot_ms,
    archiveMs: row.archive_ms,
    totalMs: row.total_ms,
    stacks,
    quiesceTimeoutMs: row.quiesce_timeout_ms,
    requestedBy: row.requested_by,
    ...(row.group_run_id ? { groupRunId: row.group_run_id } : {}),
    phaseSince: new Date(row.phase_since),
  };
}

export function jobToRow(job: JobRecord, epoch: number): JobRow {
  return {
    id: job.id,
    kind: job.kind === RESTORE_KIND ? RESTORE_KIND : BACKUP_KIND,
    guest_id: job.guestId,
    idempotency_key: job.idempotencyKey,
    phase: phaseName(job.phase),
    engine: job.engine,
    mode: job.mode,
    consistency: job.consistency,
    policy: job.policy,
    created_at: job.createdAt?.getTime() ?? job.phaseSince.getTime(),
    updated_at: job.updatedAt?.getTime() ?? job.phaseSince.getTime(),
    phase_since: job.phaseSince.getTime(),
    snapshot_at: millis(job.snapshotAt),
    finished_at: millis(job.finishedAt),
    failed_in: job.failedIn === Phase.PHASE_UNSPECIFIED ? null : phaseName(job.failedIn),
    error_code: job.errorCode,
    error_message: job.errorMessage,
    archive_path: job.archivePath,
    archive_bytes: job.archiveBytes,
    bytes_done: job.bytesDone,
    bytes_total: job.bytesTotal,
    quiesce_ms: job.quiesceMs,
    snapshot_ms: job.snapshotMs,
    archive_ms: job.archiveMs,
    total_ms: job.totalMs,
    quiesce_timeout_ms: job.quiesceTimeoutMs,
    requested_by: job.requestedBy,
    epoch,
    group_run_id: job.groupRunId ?? "",
  };
}
