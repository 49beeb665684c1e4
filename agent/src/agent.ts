// The agent daemon's lifecycle: lock the data directory (one agent per data dir, before anything
// else), open the store (a new epoch), settle and sweep what a previous run left, start the runner
// and the gRPC server, then retention (a pass now, then periodic); stop() (or the signal) cancels
// running jobs, ends watch streams and closes the server, all bounded by `shutdownGraceMs`, and
// releases the lock last.
import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { systemClock, type Clock, type Logger } from "@lull/shared";
import { bearerAuthenticator } from "./auth/guard.js";
import { CallLimiter } from "./auth/rate-limit.js";
import { TokenStore } from "./auth/token-store.js";
import { checkConfigPaths, type AgentConfig } from "./config.js";
import type { BackupEngine } from "./engines/engine.js";
import { DATABASE_FILE } from "./datadir/database-file.js";
import { acquireDataDirLock, type DataDirLock } from "./datadir/lock.js";
import { createNativeEngine } from "./engines/native/engine.js";
import { createExecaRunner } from "@lull/shared";
import { createAgentService } from "./grpc/service.js";
import { listenAgentServer } from "./grpc/server.js";
import type { EngineFor } from "./jobs/runner.js";
import { buildAgentCore } from "./core.js";
import { JobStore } from "./jobs/store.js";
import { createPveDaemonPart, usesVzdump, type PveDaemonPart } from "./engines/vzdump/daemon-part.js";
import { startOutputs, type Outputs } from "./observe/outputs.js";
import { recoverAtStart, type RecoveryReport } from "./recovery.js";
import { retentionPolicy } from "./retention/config.js";
import { RetentionPruner, type RetentionReport } from "./retention/pruner.js";
import { createScheduleEngine } from "./schedules/daemon-part.js";
import { createScheduleHandlers } from "./api/schedule-handlers.js";
import type { ScheduleStatus } from "./schedules/engine.js";
import { TLS_DIR, ensureAgentCertificates } from "./tls/certificates.js";
import { createVerifier } from "./verify/daemon-part.js";
import { VerifyStore } from "./verify/store.js";
import { PointPruner } from "./prune/prune.js";
import { startForeignScans } from "./backups/foreign.js";
import { EventKind, Phase } from "@lull/proto";
import { createPointHandlers } from "./api/point-handlers.js";
import type { Verifier } from "./verify/verifier.js";
import { createRestoreHandlers } from "./api/restore-handlers.js";
import { createRestorer } from "./restore/daemon-part.js";
import { startClusterPart } from "./cluster/daemon-part.js";
import type { ClusterPeers } from "@lull/shared";
import type { Restorer } from "./restore/restorer.js";

export { DATABASE_FILE } from "./datadir/database-file.js";

export interface StartAgentOptions {
  config: Readonly<AgentConfig>;
  /** The engine of each guest; default: the vzdump engine for `engine: vzdump` guests, one native engine (execa) for the rest. */
  engineFor?: EngineFor;
  log: Logger;
  clock?: Clock;
  /** Aborting it stops the agent, as stop() does. */
  signal?: AbortSignal;
}

export interface RunningAgent {
  /** `host:port` the agent listens on (the real port when 0 was configured). */
  address: string;
  port: number;
  /** The local operator socket (lullctl), owner-only. */
  socketPath?: string | undefined;
  /** `sha256:…` of the agent's CA, which controllers pin; undefined when `listen.insecure`. */
  fingerprint?: string | undefined;
  /** The agent's tokens (the same table `lull-agent token` manages). */
  tokens: TokenStore;
  /** This start's fencing epoch. */
  epoch: number;
  /** What start-up recovery settled and swept. */
  recovery: RecoveryReport;
  /** `host:port` of the Prometheus listener, when `metrics.address` is set. */
  metricsAddress?: string | undefined;
  /** Retention of ended jobs: its first pass runs at start, then periodically; runOnce() prunes now. */
  retention: { runOnce(): Promise<RetentionReport> };
  /** Each schedule's last run, result and next run (empty without schedules). */
  schedules(): ScheduleStatus[];
  /** App-level verification of restore points (its start-up sweep has run). */
  verifier: Verifier;
  restorer: Restorer;
  /** The cluster listener and this node's clients of the other agents (when `cluster.enabled`). */
  cluster?: { address: string; port: number; peers: ClusterPeers } | undefined;
  /** Stops the agent; running jobs end `cancelled`. Idempotent. */
  stop(): Promise<void>;
}

/** How often the verifier looks for points to verify (a job ending done also starts a look). */
const VERIFY_INTERVAL_MS = 60_000;
/** How often the vzdump guests' storages are listed for archives made without Lull. */
const FOREIGN_SCAN_INTERVAL_MS = 10 * 60_000;

/** One native engine for every guest, running commands through execa. */
export function nativeEngineFor(config: Readonly<AgentConfig>, log: Logger, clock: Clock): EngineFor {
  const engine = createNativeEngine({ config, runner: createExecaRunner({ log }), log, clock });
  return () => engine;
}

/** Each guest's engine: `vzdump` when it says so (and the Proxmox side exists), the native engine otherwise. */
export function defaultEngineFor(config: Readonly<AgentConfig>, log: Logger, clock: Clock, vzdump?: BackupEngine): EngineFor {
  const native = nativeEngineFor(config, log, clock);
  return (guest) => (guest.engine === "vzdump" && vzdump ? vzdump : native(guest));
}

function agentVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as { version?: unknown };
    return typeof pkg.version === "string" ? pkg.version : "unknown";
  } catch {
    return "unknown";
  }
}

/**
 * Starts the agent. Before anything else it takes the data directory's lock: while another agent
 * holds it this throws LULL_E_DATA_DIR_LOCKED and has touched nothing (no migration, no recovery,
 * no sweep, no socket).
 */
export async function startAgent(options: StartAgentOptions): Promise<RunningAgent> {
  const clock = options.clock ?? systemClock;
  mkdirSync(options.config.dataDir, { recursive: true, mode: 0o700 });
  const lock = acquireDataDirLock(options.config.dataDir, () => clock.now());
  try {
    return await startLocked(options, clock, lock);
  } catch (err) {
    lock.release();
    throw err;
  }
}

async function startLocked(options: StartAgentOptions, clock: Clock, lock: DataDirLock): Promise<RunningAgent> {
  const { config, log } = options;
  const startedAt = new Date(clock.now());
  checkConfigPaths(config);
  const store = JobStore.open(join(config.dataDir, DATABASE_FILE), { now: () => clock.now() });
  let tokens: TokenStore | undefined;
  let pve: PveDaemonPart | undefined;
  let outputs: Outputs | undefined;
  let cluster: Awaited<ReturnType<typeof startClusterPart>>;
  try {
    tokens = TokenStore.over(store.connection);
    // The Proxmox side (vzdump engine, hook server, crash cleanup) exists when a guest uses vzdump.
    pve = usesVzdump(config) ? createPveDaemonPart({ config, log, clock, database: store.connection }) : undefined;
    const engineFor = options.engineFor ?? defaultEngineFor(config, log, clock, pve?.engine);
    log.info({ epoch: store.epoch, dataDir: config.dataDir, pid: lock.owner.pid, guests: config.guests.map((g) => g.id) }, "agent starting");

    let shuttingDown = false;
    const core = buildAgentCore({ config, store, engineFor, log, clock, isShuttingDown: () => shuttingDown });
    const { bus, ledger, groupLedger, coordinator, runner } = core;
    // Metrics and notifications see every job that ends from here on, recovery's settlements too.
    outputs = await startOutputs({ config, bus, store, log, clock });
    // Restores a crash interrupted, before the jobs' recovery: what they extracted is removed, a
    // target being replaced is finished (a restore in place first, while its stacks are still held).
    const restorer = createRestorer({ config, ledger, runner, log, clock });
    await restorer.recover();
    const recovery = await recoverAtStart({
      ledger,
      groups: groupLedger,
      followRemoteGroups: config.cluster.enabled,
      guests: config.guests,
      engineFor,
      archiveDir: config.archiveDir,
      log,
      ...(options.signal ? { signal: options.signal } : {}),
    });

    // Replicas a crashed verification left are torn down before anything new starts.
    const verifier = createVerifier({ config, ledger, bus, log, clock });
    await verifier.recover();

    if (config.failpoint) log.warn({ failpoint: config.failpoint }, "crash-test failpoint armed");

    // vzdump archives made without Lull in a vzdump guest's storage: foreign points in the catalog.
    const foreignGuests = config.pve.vzdump.dumpdir === undefined ? config.guests.filter((g) => g.engine === "vzdump").map((g) => ({ id: g.id, storage: config.pve.vzdump.storage ?? "local" })) : [];
    const foreignScans =
      foreignGuests.length > 0
        ? startForeignScans({
            runner: createExecaRunner({ log }),
            node: config.node,
            backups: ledger.backups,
            ledger: ledger.ledger,
            log,
            guests: foreignGuests,
            intervalMs: FOREIGN_SCAN_INTERVAL_MS,
            subscribeDone: (fn) =>
              bus.subscribe({}, (event) => {
                if (event.kind === EventKind.EVENT_KIND_PHASE && event.phase === Phase.PHASE_DONE && foreignGuests.some((g) => g.id === event.guestId)) fn();
              }),
          })
        : undefined;

    const pointPruner = new PointPruner({
      config: config.prune,
      groups: config.groups,
      node: config.node,
      archiveDir: config.archiveDir,
      backups: ledger.backups,
      jobs: store,
      verify: new VerifyStore(store.database),
      ledger: ledger.ledger,
      runner: createExecaRunner({ log }),
      log,
      vzdumpStorage: config.pve.vzdump.dumpdir === undefined ? (config.pve.vzdump.storage ?? "local") : undefined,
    });
    let schedules: Awaited<ReturnType<typeof createScheduleEngine>> | undefined;
    const metrics = outputs.metrics;
    const service = createAgentService({
      scheduleHandlers: createScheduleHandlers(() => schedules),
      config,
      ledger,
      runner,
      bus,
      clock,
      log,
      version: agentVersion(),
      startedAt,
      isShuttingDown: () => shuttingDown,
      onLiveHandoff: metrics && ((events, now) => metrics.eventsHandedOff(events, now)),
      groupLedger,
      groupHandlers: core.groupHandlers,
      remoteGroupHandlers: core.remoteGroupHandlers,
      restoreHandlers: createRestoreHandlers({ guests: new Map(config.guests.map((g) => [g.id, g])), restorer, isShuttingDown: () => shuttingDown }),
      pointHandlers: createPointHandlers({
        guests: new Map(config.guests.map((g) => [g.id, g])),
        backups: ledger.backups,
        verifyStore: new VerifyStore(store.database),
        verifier,
        pruner: pointPruner,
        isShuttingDown: () => shuttingDown,
      }),
    });
    // vzdump's hook reaches the agent from here on; backups Proxmox starts by itself get jobs too.
    await pve?.start({ ledger, runner, isShuttingDown: () => shuttingDown });
    const tls = config.listen.insecure
      ? undefined
      : await ensureAgentCertificates({
          dir: join(config.dataDir, TLS_DIR),
          node: config.node,
          names: config.listen.names,
          runner: createExecaRunner({ log }),
          log,
          ...(options.signal ? { signal: options.signal } : {}),
        });
    if (!tls) log.warn({ address: config.listen.address }, "network listener is plain TCP (listen.insecure): tokens cross the network in clear");
    const limiter = new CallLimiter(
      { rates: { registerStack: config.limits.registerStack, watchEvents: config.limits.watchEvents }, maxStreams: config.limits.maxWatchStreams, maxStreamsTotal: config.limits.maxWatchStreamsTotal },
      clock,
    );
    const ruleContext = { groupRunGuests: (runId: string) => groupLedger.store.guestsOfRun(runId) };
    const server = await listenAgentServer({
      address: config.listen.address,
      implementation: service.implementation,
      log,
      clock,
      tls,
      auth: {
        authenticate: bearerAuthenticator(tokens, clock),
        context: ruleContext,
        limiter,
      },
      socketPath: config.listen.socket,
      keepaliveMs: config.listen.keepaliveMs,
    });
    try {
      cluster = await startClusterPart({ config, implementation: service.implementation, log, clock, limiter, context: ruleContext });
      core.cluster.peers = cluster?.peers;
      // Runs the stop interrupted past their point: their members on other nodes are followed there, then the runs settled.
      for (const s of recovery.settledGroups ?? []) if (s.outcome === "following") void core.coordinator.followInterrupted(s.groupRunId);
    } catch (err) {
      await server.shutdown(0);
      throw err;
    }
    log.info(
      { address: server.address, socket: server.socketPath, tls: tls !== undefined, fingerprint: tls?.fingerprint, names: tls?.names, clusterAddress: cluster?.address },
      "agent listening",
    );

    const retention = new RetentionPruner({
      store,
      policy: retentionPolicy(config.retention),
      intervalMs: config.retention.intervalMinutes * 60_000,
      clock,
      log,
    });
    retention.start();
    // Schedules last: their ticks start jobs through the same runner the API uses.
    schedules = await createScheduleEngine({ config, core, store, clock, log, verifier, pruner: pointPruner, isShuttingDown: () => shuttingDown });
    schedules?.start();
    verifier.start(VERIFY_INTERVAL_MS);
    // Verification, schedule and lease metrics, read from their stores at each scrape.
    const verifyStore = pointPruner.verifyStore;
    outputs.metrics?.attachSources({
      guests: config.guests.map((g) => g.id),
      markers: (guestId) => verifyStore.markers(guestId),
      verifications: (guestId) => verifyStore.ofGuest(guestId, 20),
      leasesHeldByStreams: () => service.leasesHeldByStreams(),
      ...(schedules
        ? {
            schedules: () => schedules?.status(),
            scheduledGuests: (id: string) => {
              const s = config.schedules.list.find((x) => x.id === id);
              if (s === undefined) return [];
              if (s.all) return config.guests.map((g) => g.id);
              if (s.group !== undefined) return config.groups.find((g) => g.id === s.group)?.guests ?? [];
              return s.guests;
            },
          }
        : {}),
    });

    let stopping: Promise<void> | undefined;
    const stop = (): Promise<void> => {
      stopping ??= (async () => {
        shuttingDown = true;
        const deadline = clock.now() + config.shutdownGraceMs;
        log.info({ activeJobs: runner.activeCount, graceMs: config.shutdownGraceMs }, "agent stopping");
        await retention.close();
        await schedules?.close();
        await verifier.close();
        await restorer.close();
        await foreignScans?.close();
        await runner.shutdown("agent shutting down", config.shutdownGraceMs);
        await pve?.close();
        coordinator.close();
        service.closeStreams();
        await cluster?.close(Math.max(0, deadline - clock.now()));
        await server.shutdown(Math.max(0, deadline - clock.now()));
        await outputs?.close(Math.max(0, deadline - clock.now()));
        tokens?.close();
        store.close();
        lock.release();
        log.info({}, "agent stopped");
      })();
      return stopping;
    };
    options.signal?.addEventListener("abort", () => void stop(), { once: true });
    if (options.signal?.aborted) await stop();

    return {
      address: server.address,
      port: server.port,
      socketPath: server.socketPath,
      fingerprint: tls?.fingerprint,
      metricsAddress: outputs.metricsAddress,
      tokens,
      epoch: store.epoch,
      recovery,
      retention: { runOnce: () => retention.runOnce() },
      schedules: () => schedules?.status() ?? [],
      verifier,
      restorer,
      ...(cluster ? { cluster: { address: cluster.address, port: cluster.port, peers: cluster.peers } } : {}),
      stop,
    };
  } catch (err) {
    await cluster?.close(0).catch(() => undefined);
    await outputs?.close(0).catch(() => undefined);
    await pve?.close().catch(() => undefined);
    tokens?.close();
    store.close();
    throw err;
  }
}
