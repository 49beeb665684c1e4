// Restoring a point into a replica, by where the point is. Native archives go through the agent's
// archive extractor into `replica.root` (`<volume name>/…`, the archive's layout).
import { LullError } from "@lull/shared";
import type { RestorePoint } from "../backups/restore-point.js";
import { REPLICA_ENV, type Replica } from "./replica.js";
import type { RestoreIntoReplica } from "./verifier.js";
import type { NativeExtractor } from "./extract-native.js";

export interface ReplicaRestoreDeps {
  /**
   * Extracts a native archive into an empty directory (the one safe extractor). `env` is the
   * replica's mark (REPLICA_ENV): every process the extraction starts carries it, so a teardown —
   * or the sweep after an agent crash, when an orphaned extractor may still be writing — kills it.
   */
  extractNative: NativeExtractor;
  /** Restores a vzdump/PBS point as a scratch guest and gives the directory its root filesystem is at. */
  restoreGuest?(point: RestorePoint, replica: Replica, signal: AbortSignal): Promise<void>;
}

export function replicaRestorer(deps: ReplicaRestoreDeps): RestoreIntoReplica {
  return async (point, replica, signal) => {
    if (point.locationKind === "native-archive") return deps.extractNative(point, replica.root, signal, { [REPLICA_ENV]: replica.dir });
    if (!deps.restoreGuest) {
      throw new LullError("LULL_E_INVALID_ARGUMENT", `point ${point.id} is a ${point.locationKind}: verifying it needs the Proxmox side (a guest with engine vzdump on this node)`);
    }
    return deps.restoreGuest(point, replica, signal);
  };
}
