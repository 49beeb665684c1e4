// The group's pmxcfs lease (README.md, "Across nodes", "Who coordinates"): a run of a group with
// members on other nodes is coordinated by the node that holds `lull-group-<id>`, the same
// cluster-wide lock the schedules use (schedules/lease.ts: mkdir under /etc/pve/priv/lock, renewed
// with utime, freed with rmdir; pmxcfs frees a lock no node renewed for 120 s). The lease is taken
// before anything of the run exists, so two nodes starting the group at once get one run and one
// clear refusal (LULL_E_GROUP_LEASE_UNAVAILABLE); it is held until the run ended, and losing it
// before the snapshot point fails the run (LULL_E_GROUP_LEASE_LOST, coordinator.ts).
import { LullError, type Clock as SharedClock } from "@lull/shared";
import { Pmxcfs, type ClusterFs } from "../schedules/cluster-fs.js";
import { acquireLease, realClock, type Lease, type LeaseTiming } from "../schedules/lease.js";

/** Takes the lease of group `groupId`, or throws LULL_E_GROUP_LEASE_UNAVAILABLE saying why not. */
export type GroupLeases = (groupId: string) => Promise<Lease>;

export const groupLeaseName = (groupId: string) => `group-${groupId}`;

export function groupLeases(o: { node: string; clusterRoot: string; timing: LeaseTiming; clock: SharedClock; fs?: ClusterFs }): GroupLeases {
  const fs = o.fs ?? new Pmxcfs(o.node, o.clusterRoot);
  const clock = { ...realClock, now: () => o.clock.now() };
  return async (groupId) => {
    const got = await acquireLease(fs, groupLeaseName(groupId), o.timing, clock);
    if (got.held) return got.lease;
    const why =
      got.code === "timeout"
        ? `another node coordinates a run of group ${groupId} now (its lock stayed held for ${o.timing.acquireTimeoutMs} ms); start it again when that run ended — a lock left by a killed node is freed by pmxcfs after 120 s`
        : got.code === "no-quorum"
          ? "this node's cluster has no quorum, so no node may coordinate a group across nodes now"
          : "pmxcfs did not take the lock";
    throw new LullError("LULL_E_GROUP_LEASE_UNAVAILABLE", `group ${groupId} has members on other nodes and its run needs the pmxcfs lease lull-${groupLeaseName(groupId)}: ${why} (${got.reason})`);
  };
}
