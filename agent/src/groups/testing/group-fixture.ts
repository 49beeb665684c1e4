// In-process fixture for coordinator tests: real SQLite in a temp dir and the agent's core as
// production wires it (core.ts: the event bus, the ledgers, the coordinator, the runner with an
// injected engine, the group handlers — the service's logic without gRPC). Helpers act as controllers (register, acknowledge, refuse)
// and wait for jobs and runs by reading the store.
import { strict as assert } from "node:assert";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { StartGroupBackupRequest, type Event, type GroupRun } from "@lull/proto";
import { createLogger, isTerminal, systemClock, type ClusterPeers } from "@lull/shared";
import type { GroupHandlers } from "../../api/group-handlers.js";
import { agentConfigSchema, type AgentConfig } from "../../config.js";
import { buildAgentCore } from "../../core.js";
import type { EventBus } from "../../events/bus.js";
import type { JobLedger } from "../../jobs/ledger.js";
import type { JobRunner } from "../../jobs/runner.js";
import type { GroupCoordinator } from "../coordinator.js";
import type { GroupLedger } from "../ledger.js";
import type { BackupEngine } from "../../engines/engine.js";
import type { JobRecord } from "../../jobs/job.js";
import { JobStore } from "../../jobs/store.js";
import type { GroupRunRecord } from "../group-run.js";

export interface GroupFixtureOptions {
  /** The engine, or how to make it from the fixture's config (the real native engine). */
  engine: BackupEngine | ((config: Readonly<AgentConfig>) => BackupEngine);
  guests: string[];
  /** Guests whose dir driver archives in place (`snapshot: none`). */
  noCopy?: string[];
  config?: Record<string, unknown>;
  /** The runner's progress interval (default 250 ms). */
  progressIntervalMs?: number;
  /** The other nodes' agents (members on other nodes), as the cluster part would set them. */
  peers?: ClusterPeers;
}

export interface GroupFixture {
  config: Readonly<AgentConfig>;
  bus: EventBus;
  store: JobStore;
  ledger: JobLedger;
  groupLedger: GroupLedger;
  coordinator: GroupCoordinator;
  runner: JobRunner;
  handlers: GroupHandlers;
  /** Every committed event, in sequence order. */
  events: Event[];
  start(req: Partial<StartGroupBackupRequest>): Promise<GroupRun>;
  register(guestId: string, stack: string): void;
  acknowledge(guestId: string, stack: string): void;
  refuse(guestId: string, stack: string, reason: string): void;
  activeJob(guestId: string): JobRecord;
  waitFor<T>(what: string, probe: () => T | undefined, timeoutMs?: number): Promise<T>;
  waitForRunEnd(runId: string, timeoutMs?: number): Promise<GroupRunRecord>;
  close(): Promise<void>;
}

export function groupFixture(options: GroupFixtureOptions): GroupFixture {
  const dir = mkdtempSync(join(tmpdir(), "lull-groups-"));
  const config = agentConfigSchema.parse({
    dataDir: join(dir, "data"),
    archiveDir: join(dir, "archives"),
    stagingDir: join(dir, "staging"),
    guests: options.guests.map((id) => ({
      id,
      driver: "dir",
      snapshot: options.noCopy?.includes(id) ? "none" : "copy",
      volumes: [{ name: "data", path: join(dir, "vol", id) }],
    })),
    // The runner's CancelJob grace follows it (at most 5 s); coordinator tests want 2 s.
    shutdownGraceMs: 2_000,
    ...options.config,
  });
  const log = createLogger({ name: "lull-agent", level: "silent" });
  const store = JobStore.open(join(dir, "agent.db"));
  const engine = typeof options.engine === "function" ? options.engine(config) : options.engine;
  const core = buildAgentCore({
    config,
    store,
    engineFor: () => engine,
    log,
    clock: systemClock,
    isShuttingDown: () => false,
    barrierSlackMs: 1_000,
    ...(options.progressIntervalMs !== undefined ? { progressIntervalMs: options.progressIntervalMs } : {}),
  });
  if (options.peers) core.cluster.peers = options.peers;
  const { bus, ledger, groupLedger, coordinator, runner, groupHandlers: handlers } = core;
  const events: Event[] = [];
  bus.subscribe({}, (e) => void events.push(e));

  const activeJob = (guestId: string): JobRecord => {
    const job = store.activeJob(guestId);
    assert.ok(job, `guest ${guestId} has no active job`);
    return job;
  };
  async function waitFor<T>(what: string, probe: () => T | undefined, timeoutMs = 5_000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const value = probe();
      if (value !== undefined && value !== false) return value;
      if (Date.now() > deadline) assert.fail(`timed out after ${timeoutMs} ms waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  return {
    config,
    bus,
    store,
    ledger,
    groupLedger,
    coordinator,
    runner,
    handlers,
    events,
    start: async (req) => (await handlers.startGroupBackup(StartGroupBackupRequest.fromPartial(req))).group as GroupRun,
    register: (guestId, stack) => void store.renewLease({ guestId, stack, controllerId: `ctl-${guestId}-${stack}`, ttlMs: 60_000 }, Date.now()),
    acknowledge: (guestId, stack) => void ledger.apply(activeJob(guestId).id, { type: "stack-acknowledged", stack, at: Date.now() }),
    refuse: (guestId, stack, reason) => void ledger.apply(activeJob(guestId).id, { type: "stack-refused", stack, reason }),
    activeJob,
    waitFor,
    waitForRunEnd: (runId, timeoutMs) =>
      waitFor(`group run ${runId} to end`, () => {
        const run = groupLedger.store.getRun(runId);
        return run && isTerminal(run.phase) ? run : undefined;
      }, timeoutMs),
    async close() {
      await runner.shutdown("test over", 2_000);
      coordinator.close();
      store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
