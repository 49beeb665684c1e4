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

export function createScheduleEngine(d: SchedulePartDeps): ScheduleEngine | undefined {
  const { config } = d;
  if (config.schedules.list.length === 0) return undefined;
  const clock: Clock = { ...realClock, now: () => d.clock.now() };
  const ticks = new ScheduleTickStore(d.store.database, config.node, (events) => d.core.bus.publish(events));
  const cluster = config.schedules.list.some((s) => s.scope === "cluster") ? new Pmxcfs(config.node, config.schedules.clusterRoot) : undefined;
  return new ScheduleEngine({
    schedules: config.schedules.list,
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
    cluster,
    leaseTiming: config.schedules.lease as LeaseTiming,
    log: (msg, fields) => d.log.warn(fields ?? {}, msg),
  });
}
