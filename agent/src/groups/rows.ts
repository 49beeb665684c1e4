// Mapping between rows of `group_runs` (migration 4) and group run records. Like jobs: phases by
// name, other enums by their protobuf numbers, lists of guest ids comma-separated (a guest id
// cannot contain a comma).
import { Phase } from "@lull/proto";
import { LullError, phaseFromName, phaseName } from "@lull/shared";
import { dateOf as date, millisOf as millis } from "../ledger/columns.js";
import type { GroupRunRecord } from "./group-run.js";

export interface GroupRunRow {
  id: string;
  group_id: string;
  guest_ids: string;
  idempotency_key: string;
  phase: string;
  consistency: number;
  policy: number;
  created_at: number;
  updated_at: number;
  phase_since: number;
  quiesced_at: number | null;
  snapshot_at: number | null;
  finished_at: number | null;
  failed_in: string | null;
  error_code: string;
  error_message: string;
  failed_guests: string;
  quiesce_ms: number;
  snapshot_ms: number;
  archive_ms: number;
  total_ms: number;
  quiesce_timeout_ms: number;
  requested_by: string;
  epoch: number;
}

export const GROUP_RUN_COLUMNS: readonly (keyof GroupRunRow)[] = [
  "id", "group_id", "guest_ids", "idempotency_key", "phase", "consistency", "policy", "created_at", "updated_at",
  "phase_since", "quiesced_at", "snapshot_at", "finished_at", "failed_in", "error_code", "error_message",
  "failed_guests", "quiesce_ms", "snapshot_ms", "archive_ms", "total_ms", "quiesce_timeout_ms", "requested_by", "epoch",
];

const list = (text: string): string[] => (text === "" ? [] : text.split(","));

function phaseOf(name: string, id: string): Phase {
  const phase = phaseFromName(name);
  if (phase === undefined) throw new LullError("LULL_E_INTERNAL", `group run ${id} has an unknown phase ${name} in the database`);
  return phase;
}

export function groupRunFromRow(row: GroupRunRow): GroupRunRecord {
  return {
    id: row.id,
    groupId: row.group_id,
    guestIds: list(row.guest_ids),
    phase: phaseOf(row.phase, row.id),
    consistency: row.consistency,
    policy: row.policy,
    idempotencyKey: row.idempotency_key,
    createdAt: new Date(row.created_at),
    updatedAt: new Date(row.updated_at),
    quiescedAt: date(row.quiesced_at),
    snapshotAt: date(row.snapshot_at),
    finishedAt: date(row.finished_at),
    failedIn: row.failed_in === null ? Phase.PHASE_UNSPECIFIED : phaseOf(row.failed_in, row.id),
    errorCode: row.error_code,
    errorMessage: row.error_message,
    failedGuests: list(row.failed_guests),
    quiesceMs: row.quiesce_ms,
    snapshotMs: row.snapshot_ms,
    archiveMs: row.archive_ms,
    totalMs: row.total_ms,
    quiesceTimeoutMs: row.quiesce_timeout_ms,
    requestedBy: row.requested_by,
    phaseSince: new Date(row.phase_since),
  };
}

export function groupRunToRow(run: GroupRunRecord, epoch: number): GroupRunRow {
  return {
    id: run.id,
    group_id: run.groupId,
    guest_ids: run.guestIds.join(","),
    idempotency_key: run.idempotencyKey,
    phase: phaseName(run.phase),
    consistency: run.consistency,
    policy: run.policy,
    created_at: run.createdAt?.getTime() ?? run.phaseSince.getTime(),
    updated_at: run.updatedAt?.getTime() ?? run.phaseSince.getTime(),
    phase_since: run.phaseSince.getTime(),
    quiesced_at: millis(run.quiescedAt),
    snapshot_at: millis(run.snapshotAt),
    finished_at: millis(run.finishedAt),
    failed_in: run.failedIn === Phase.PHASE_UNSPECIFIED ? null : phaseName(run.failedIn),
    error_code: run.errorCode,
    error_message: run.errorMessage,
    failed_guests: run.failedGuests.join(","),
    quiesce_ms: run.quiesceMs,
    snapshot_ms: run.snapshotMs,
    archive_ms: run.archiveMs,
    total_ms: run.totalMs,
    quiesce_timeout_ms: run.quiesceTimeoutMs,
    requested_by: run.requestedBy,
    epoch,
  };
}
