// The agent's core, wired once: the database's stores, the event bus, the one ledger with its
// backup and group kinds, the group coordinator and the job runner. `startAgent` (agent.ts) builds
// it between taking the data directory's lock and opening the listeners; every in-process fixture
// builds it the same way, so a test runs the production wiring, not a copy of it.
import { snapshotKind, type AgentConfig } from "./config.js";
import { createGroupHandlers, type GroupHandlers } from "./api/group-handlers.js";
import { EventBus } from "./events/bus.js";
import { GroupCoordinator } from "./groups/coordinator.js";
import { GroupLedger } from "./groups/ledger.js";
import { RemoteMemberships, eitherMembership } from "./groups/remote-member.js";
import { groupLeases } from "./groups/lease.js";
import type { LeaseTiming } from "./schedules/lease.js";
import { createRemoteGroupHandlers, type RemoteGroupHandlers } from "./api/remote-group-handlers.js";
import { failpointPhase } from "./jobs/failpoint.js";
import { JobLedger } from "./jobs/ledger.js";
import { JobRunner, type EngineFor } from "./jobs/runner.js";
import type { JobStore } from "./jobs/store.js";
import type { ClusterPeers, Clock, Logger } from "@lull/shared";

/** Longest a CancelJob call waits for the run to end before the runner settles the job itself. */
export const CANCEL_WAIT_MS = 5_000;

export interface AgentCoreDeps {
  config: Readonly<AgentConfig>;
  /** The job store over the agent's open database (its epoch fences every write of this core). */
  store: JobStore;
  engineFor: EngineFor;
  log: Logger;
  clock: Clock;
  /** True once the agent is stopping: no new jobs or group runs. */
  isShuttingDown: () => boolean;
  /** Tuning for tests: the runner's progress interval, the coordinator's barrier slack. */
  progressIntervalMs?: number;
  barrierSlackMs?: number;
}

export interface AgentCore {
  bus: EventBus;
  ledger: JobLedger;
  groupLedger: GroupLedger;
  coordinator: GroupCoordinator;
  runner: JobRunner;
  /** The group RPCs' logic (the gRPC service and fixtures call it). */
  groupHandlers: GroupHandlers;
  /** This node's members of group runs other nodes coordinate, and their two RPCs. */
  remoteMembers: RemoteMemberships;
  remoteGroupHandlers: RemoteGroupHandlers;
  /** The other nodes' agents, once the cluster part started (the coordinator asks remote members through them). */
  cluster: { peers: ClusterPeers | undefined };
}

export function buildAgentCore(deps: AgentCoreDeps): AgentCore {
  const { config, store, log, clock } = deps;
  const bus = new EventBus(log);
  const ledger = new JobLedger({ store, bus, log, clock });
  const groupLedger = new GroupLedger(ledger);
  const cluster: AgentCore["cluster"] = { peers: undefined };
  const remoteMembers = new RemoteMemberships();
  const coordinator = new GroupCoordinator({
    peers: () => cluster.peers,
    ledger: groupLedger,
    bus,
    clock,
    log,
    makesCopy: (guestId) => config.guests.some((g) => g.id === guestId && snapshotKind(g) !== "none"),
    ...(deps.barrierSlackMs !== undefined ? { barrierSlackMs: deps.barrierSlackMs } : {}),
  });
  const runner = new JobRunner({
    ledger,
    bus,
    clock,
    log,
    guests: config.guests,
    engineFor: deps.engineFor,
    // CancelJob waits this long for the engine to clean up; kept below a client's usual 10 s deadline.
    cancelGraceMs: Math.min(config.shutdownGraceMs, CANCEL_WAIT_MS),
    failpoint: failpointPhase(config.failpoint),
    groups: eitherMembership(coordinator, remoteMembers),
    ...(deps.progressIntervalMs !== undefined ? { progressIntervalMs: deps.progressIntervalMs } : {}),
  });
  const guests = new Map(config.guests.map((g) => [g.id, g]));
  const groupHandlers = createGroupHandlers({
    config,
    guests,
    groupLedger,
    coordinator,
    runner,
    clock,
    log,
    isShuttingDown: deps.isShuttingDown,
    // A run of a group with members on other nodes takes the group's pmxcfs lease (groups/lease.ts).
    leases: groupLeases({ node: config.node, clusterRoot: config.schedules.clusterRoot, timing: config.schedules.lease as LeaseTiming, clock }),
  });
  const remoteGroupHandlers = createRemoteGroupHandlers({
    config,
    guests,
    ledger,
    runner,
    bus,
    clock,
    log,
    memberships: remoteMembers,
    isShuttingDown: deps.isShuttingDown,
  });
  return { bus, ledger, groupLedger, coordinator, runner, groupHandlers, remoteMembers, remoteGroupHandlers, cluster };
}
