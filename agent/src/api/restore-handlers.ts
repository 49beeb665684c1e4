// The restore RPCs' logic (RestorePoint, GetRestore, ListRestores, CancelRestore): request
// validation and the API view of a run. Operators only (auth/rules.ts): a restore writes as root
// on the node.
import type { CancelRestoreRequest, GetRestoreRequest, ListRestoresRequest, ListRestoresResponse, Restore, RestorePointRequest } from "@lull/proto";
import { LIMITS, LullError } from "@lull/shared";
import { targetValue, type RestoreRecord } from "../restore/machine.js";
import type { Restorer } from "../restore/restorer.js";
import { validPointId } from "./point-handlers.js";
import { requireGuest, type GuestDirectory } from "./validate.js";

const RESTORE_ID = /^r-\d{8}T\d{6}-[0-9a-f]{6}$/;
const MAX_LIST = 500;

export interface RestoreHandlerDeps {
  guests: GuestDirectory;
  restorer: Restorer;
  isShuttingDown: () => boolean;
}

function validRestoreId(value: string): string {
  if (!RESTORE_ID.test(value)) throw new LullError("LULL_E_INVALID_ARGUMENT", `restore_id is not a restore id (expected ${RESTORE_ID.source}; lullctl restores lists them)`);
  return value;
}

export function restoreView(r: RestoreRecord): Restore {
  const t = r.target;
  return {
    id: r.id,
    pointId: r.pointId,
    guestId: r.guestId,
    phase: r.phase,
    targetKind: t.kind,
    target: targetValue(t),
    force: r.force,
    startedAt: new Date(r.startedAt),
    endedAt: r.endedAt === undefined ? undefined : new Date(r.endedAt),
    bytesDone: r.bytesDone,
    bytesTotal: r.bytesTotal,
    files: r.files,
    bytes: r.bytes,
    sha256: r.sha256,
    errorCode: r.errorCode,
    reason: r.reason,
    checkMs: r.checkMs,
    extractMs: r.extractMs,
    totalMs: r.endedAt === undefined ? 0 : r.endedAt - r.startedAt,
    requestedBy: r.requestedBy,
  };
}

export function createRestoreHandlers(deps: RestoreHandlerDeps) {
  return {
    async restorePoint(req: RestorePointRequest): Promise<Restore> {
      const guest = requireGuest(deps.guests, req.guestId);
      const pointId = validPointId(req.pointId);
      if (deps.isShuttingDown()) throw new LullError("LULL_E_SHUTTING_DOWN", "the agent is shutting down and starts no restore");
      if (req.requestedBy.length > LIMITS.requestedBy) throw new LullError("LULL_E_INVALID_ARGUMENT", `requested_by is longer than ${LIMITS.requestedBy} characters`);
      const t = req.target;
      if (!t) throw new LullError("LULL_E_INVALID_ARGUMENT", "a restore needs a target: to_dir (a directory, native points), in_place (a native guest's own volumes) or to_guest (vzdump and PBS points)");
      let target: Parameters<Restorer["start"]>[0]["target"];
      if (t.$case === "toDir") {
        if (t.value === "" || t.value.length > 4096 || t.value.includes("\0")) throw new LullError("LULL_E_INVALID_ARGUMENT", "to_dir must be an absolute directory path");
        target = { kind: "dir", path: t.value };
      } else if (t.$case === "inPlace") {
        if (!t.value) throw new LullError("LULL_E_INVALID_ARGUMENT", "in_place must be true when it is the target");
        target = { kind: "in-place" };
      } else {
        const g = t.value;
        if (g.storage !== "" && !/^[A-Za-z][\w.-]{0,99}$/.test(g.storage)) throw new LullError("LULL_E_INVALID_ARGUMENT", `to_guest.storage ${JSON.stringify(g.storage)} is not a Proxmox storage id`);
        target = { kind: "guest", vmid: g.vmid, storage: g.storage, start: g.start };
      }
      return restoreView(await deps.restorer.start({ guestId: guest.id, pointId, target, force: req.force, requestedBy: req.requestedBy }));
    },
    getRestore(req: GetRestoreRequest): Restore {
      return restoreView(deps.restorer.get(validRestoreId(req.restoreId)));
    },
    listRestores(req: ListRestoresRequest): ListRestoresResponse {
      const guestId = req.guestId === "" ? "" : requireGuest(deps.guests, req.guestId).id;
      if (req.limit > MAX_LIST) throw new LullError("LULL_E_INVALID_ARGUMENT", `limit ${req.limit} is above ${MAX_LIST}: ask for fewer runs`);
      return { restores: deps.restorer.list(guestId, req.limit === 0 ? 50 : req.limit).map(restoreView) };
    },
    cancelRestore(req: CancelRestoreRequest): Restore {
      if (req.reason.length > 500) throw new LullError("LULL_E_INVALID_ARGUMENT", "reason is longer than 500 characters");
      return restoreView(deps.restorer.cancel(validRestoreId(req.restoreId), req.reason));
    },
  };
}

export type RestoreHandlers = ReturnType<typeof createRestoreHandlers>;
