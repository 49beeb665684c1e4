// The verification and prune RPCs' logic (VerifyPoint, ListVerifications, PrunePoints): request
// validation, the point's guest scope, and the API views of runs and decisions.
import type {
  Backup,
  GetBackupRequest,
  ListBackupsRequest,
  ListBackupsResponse,
  ProtectBackupRequest,
  UnprotectBackupRequest,
  ListVerificationsRequest,
  ListVerificationsResponse,
  PrunePointsRequest,
  PrunePointsResponse,
  Verification,
  VerifyPointRequest,
} from "@lull/proto";
import { LullError } from "@lull/shared";
import type { RestorePoint } from "../backups/restore-point.js";
import type { BackupStore } from "../backups/store.js";
import type { PointPruner } from "../prune/prune.js";
import type { VerifyRecord } from "../verify/machine.js";
import type { VerifyStore } from "../verify/store.js";
import type { Verifier } from "../verify/verifier.js";
import { requireGuest, type GuestDirectory } from "./validate.js";

/** `b-` + a job id's 26 characters. */
const POINT_ID = /^b-[0-9a-z]{26}$/;

export function validPointId(value: string, field = "point_id"): string {
  if (!POINT_ID.test(value)) throw new LullError("LULL_E_INVALID_ARGUMENT", `${field} is not a restore point id (expected ${POINT_ID.source})`);
  return value;
}

export interface PointHandlerDeps {
  guests: GuestDirectory;
  backups: BackupStore;
  verifyStore: VerifyStore;
  verifier: Verifier;
  pruner: PointPruner;
  isShuttingDown: () => boolean;
}

export function verificationView(r: VerifyRecord): Verification {
  return {
    id: r.id,
    pointId: r.pointId,
    guestId: r.guestId,
    phase: r.phase,
    startedAt: new Date(r.startedAt),
    endedAt: r.endedAt === undefined ? undefined : new Date(r.endedAt),
    restoreMs: r.restoreMs,
    checkMs: r.checkMs,
    teardownMs: r.teardownMs,
    reason: r.reason,
    stacks: r.results.map((s) => ({ stack: s.stack, check: s.check, ok: s.ok, reason: s.reason, durationMs: s.durationMs, evidenceJson: JSON.stringify(s.evidence) })),
  };
}

/** The API view of a catalog point. */
export function backupView(p: RestorePoint): Backup {
  return {
    id: p.id,
    guestId: p.guestId,
    jobId: p.jobId,
    groupRunId: p.groupRunId,
    engine: p.engine,
    mode: p.mode,
    consistency: p.consistency,
    snapshotAt: p.snapshotAt,
    createdAt: p.createdAt,
    locationKind: p.locationKind,
    location: p.location,
    sizeBytes: p.sizeBytes,
    stacks: p.stacks.map((s) => ({ stack: s.stack, state: s.state })),
    protected: p.protected,
    notes: p.notes,
    origin: p.origin,
    sha256: p.sha256,
    hasManifest: p.manifest !== undefined,
    fileCount: p.manifest?.fileCount ?? 0,
    totalBytes: p.manifest?.totalBytes ?? 0,
    integrity: p.integrity ? { state: p.integrity.state, detail: p.integrity.detail, at: p.integrity.at } : undefined,
  };
}

const MAX_LIST = 1000;

export function createPointHandlers(deps: PointHandlerDeps) {
  const pointOf = (guestId: string, pointId: string) => {
    const point = deps.backups.get(pointId);
    if (!point || point.guestId !== guestId) throw new LullError("LULL_E_INVALID_ARGUMENT", `guest ${guestId} has no restore point ${pointId}: list them with lullctl backups`);
    return point;
  };
  const setProtected = (req: ProtectBackupRequest | UnprotectBackupRequest, value: boolean): Backup => {
    const guest = requireGuest(deps.guests, req.guestId);
    const point = pointOf(guest.id, validPointId(req.pointId));
    if (!deps.backups.setProtected(point.id, value)) throw new LullError("LULL_E_INVALID_ARGUMENT", `restore point ${point.id} was removed by prune: it can no longer be ${value ? "protected" : "unprotected"}`);
    return backupView(deps.backups.get(point.id)!);
  };
  return {
    listBackups(req: ListBackupsRequest): ListBackupsResponse {
      const guest = requireGuest(deps.guests, req.guestId);
      if (req.limit > MAX_LIST) throw new LullError("LULL_E_INVALID_ARGUMENT", `limit ${req.limit} is above ${MAX_LIST}: ask for fewer points`);
      return { backups: deps.backups.list({ guestId: guest.id, limit: req.limit === 0 ? 100 : req.limit }).map(backupView) };
    },
    getBackup(req: GetBackupRequest): Backup {
      const guest = requireGuest(deps.guests, req.guestId);
      return backupView(pointOf(guest.id, validPointId(req.pointId)));
    },
    protectBackup: (req: ProtectBackupRequest): Backup => setProtected(req, true),
    unprotectBackup: (req: UnprotectBackupRequest): Backup => setProtected(req, false),
    async verifyPoint(req: VerifyPointRequest): Promise<Verification> {
      const guest = requireGuest(deps.guests, req.guestId);
      const point = pointOf(guest.id, validPointId(req.pointId));
      if (deps.isShuttingDown()) throw new LullError("LULL_E_SHUTTING_DOWN", "the agent is shutting down and starts no verification");
      if (deps.verifier.checksOf(guest.id).length === 0) {
        throw new LullError("LULL_E_INVALID_ARGUMENT", `guest ${guest.id} declares no verification check: add verify.checks entries for its stacks to the agent's configuration`);
      }
      const started = deps.verifier.startVerify(point.id);
      return verificationView(await started);
    },
    listVerifications(req: ListVerificationsRequest): ListVerificationsResponse {
      const guest = requireGuest(deps.guests, req.guestId);
      const markers = deps.verifyStore.markers(guest.id).map((m) => ({ stack: m.stack, verifiedBackupId: m.verifiedBackupId, verifiedAt: new Date(m.verifiedAt) }));
      if (req.pointId !== "") {
        const point = pointOf(guest.id, validPointId(req.pointId));
        return { verifications: deps.verifyStore.ofPoint(point.id).map(verificationView), markers };
      }
      return { verifications: deps.verifyStore.ofGuest(guest.id, 50).map(verificationView), markers };
    },
    async prunePoints(req: PrunePointsRequest): Promise<PrunePointsResponse> {
      const guest = requireGuest(deps.guests, req.guestId);
      const decisionsOf = (plan: ReturnType<PointPruner["plan"]>) =>
        plan.decisions.map((d) => ({ pointId: d.id, at: d.at, action: d.action, reasons: d.reasons, location: d.location }));
      if (req.dryRun) {
        const plan = deps.pruner.plan(guest.id);
        return { decisions: decisionsOf(plan), lastRunFailed: plan.lastRunFailed, dryRun: true, removed: [], failures: [] };
      }
      const done = await deps.pruner.prune(guest.id);
      return { decisions: decisionsOf(done), lastRunFailed: done.lastRunFailed, dryRun: false, removed: done.removed, failures: done.failures.map((f) => `${f.id}: ${f.error}`) };
    },
  };
}

export type PointHandlers = ReturnType<typeof createPointHandlers>;
