// The schedules' part of the agent daemon: the engine over the agent's database, the backup
// action through the existing job and group entry points, pmxcfs when a schedule is cluster-wide.
import type { Clock as SharedClock, Logger } from "@lull/shared";
import type { AgentConfig } from "../config.js";
import type { AgentCore } from "../core.js";
import type { JobStore } from "../jobs/store.js";
import type { PointPruner } from "../prune/prune.js";
import type { Verifier } from "../verify/verifier.js";
import { backupAction, pruneAction, verifyAction } from "./actions.js";
import { Pmxcfs } from "./cluster-fs.js";
import { ScheduleEngine } from "./engine.js";
import { realClock, type Clock, type LeaseTiming } from "./lease.js";
import { ScheduleTickStore } from "./store.js";
import { readClusterSchedules } from "./cluster-schedules.js";
import type { ScheduleConfig } from "./config.js";

export interface SchedulePartDeps {
  config: Readonly<AgentConfig>;
  core: AgentCore;
  store: JobStore;
  clock: SharedClock;
  log: Logger;
  isShuttingDown: () => boolean;
  verifier: Verifier;
  pruner: PointPruner;
}

/** How often the cluster-wide schedules file is read again. */
export const CLUSTER_SCHEDULES_REFRESH_MS = 30_000;

/**
 * The engine over the local schedules and the cluster-wide schedules file (cluster-schedules.ts),
 * read now — a wrong file fails the start, naming it — and again every 30 s.
 */
export async function createScheduleEngine(d: SchedulePartDeps): Promise<ScheduleEngine> {
  const { config } = d;
  const clock: Clock = { ...realClock, now: () => d.clock.now() };
  const ticks = new ScheduleTickStore(d.store.database, config.node, (events) => d.core.bus.publish(events));
  const view = {
    guestIds: config.guests.map((g) => g.id),
    groupIds: config.groups.map((g) => g.id),
    local: config.schedules,
    verifyFreshMs: config.verify.outdatedAfterDays * 86_400_000,
  };
  const load = async (): Promise<ScheduleConfig[]> => {
    const file = await readClusterSchedules(config.schedules.clusterRoot, view, d.clock.now());
    for (const i of file?.inactive ?? []) d.log.debug({ schedule: i.id, why: i.why, file: file?.file }, "cluster-wide schedule not active on this node");
    return [...config.schedules.list, ...(file?.schedules ?? [])];
  };
  const schedules = await load();
  return new ScheduleEngine({
    schedules,
    refresh: { everyMs: CLUSTER_SCHEDULES_REFRESH_MS, load },
    store: ticks,
    actions: {
      backup: backupAction({
        config,
        ledger: d.core.ledger,
        runner: d.core.runner,
        groupLedger: d.core.groupLedger,
        groupHandlers: d.core.groupHandlers,
        clock: d.clock,
        isShuttingDown: d.isShuttingDown,
      }),
      verify: verifyAction(config, d.verifier),
      prune: pruneAction(config, d.pruner),
    },
    clock,
    // Built whatever the schedules are now: a cluster-wide one may be added to the file later.
    cluster: new Pmxcfs(config.node, config.schedules.clusterRoot),
    leaseTiming: config.schedules.lease as LeaseTiming,
    log: (msg, fields) => d.log.warn(fields ?? {}, msg),
  });
}
