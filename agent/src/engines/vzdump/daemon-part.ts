// The Proxmox side of lull-agent, for agent.ts: present when at least one guest uses the vzdump
// engine. It owns the vzdump engine (with its start-up crash cleanup), the hook server on its
// owner-only unix socket (pve.hook.socketPath) and the hook launcher vzdump runs
// (pve.hook.scriptPath, also usable as `script:` in /etc/vzdump.conf), and its own connection to
// the agent's database for the stop-mode shutdowns of guests (./shutdown-store.ts): the crash
// cleanup starts a guest vzdump shut down and never started again, and what it did goes on the
// job as a note once start() has the job ledger (the start-up cleanup runs before it). A shutdown
// the cleanup had to leave open (a vzdump ran) is tried again every pve.vzdump.shutdownRecheckMs.
//
//   const pve = createPveDaemonPart({ config, log, clock });   // before recovery: engineFor needs pve.engine
//   … recovery (pve.engine.sweep = PveCleanup), ledger, runner …
//   await pve.start({ ledger, runner, isShuttingDown });       // hook server + launcher; foreign backups get jobs
//   … on stop, after the runner's shutdown: await pve.close();
import { EventKind } from "@lull/proto";
import { isTerminal, type Clock, type Logger } from "@lull/shared";
import type { AgentConfig } from "../../config.js";
import { createVzdumpEngine, type VzdumpEngine } from "./engine.js";
import type { CommandRunner } from "@lull/shared";
import { createExecaRunner } from "@lull/shared";
import { installHookLauncher } from "../../hook/hook-install.js";
import { eventFor } from "../../jobs/job.js";
import type { JobLedger } from "../../jobs/ledger.js";
import { HookServer, type ForeignBackupHandler } from "../../hook/hook-server.js";
import { PveCleanup } from "../../pve/cleanup.js";
import { foreignBackupHandler, type ForeignJobsDeps } from "./foreign-jobs.js";
import { noteSettledShutdowns, type JobNoter } from "../../pve/guest-restart.js";
import { createExecaLauncher } from "@lull/shared";
import { VzdumpShutdownStore } from "./shutdown-store.js";
import type { Database } from "better-sqlite3";

export interface PveDaemonDeps {
  config: Readonly<AgentConfig>;
  log: Logger;
  clock: Clock;
  /** Default: execa (argv arrays, no shell). */
  runner?: CommandRunner;
  /** The agent's database connection (the job store's), where stop-mode shutdowns are recorded. */
  database: Database;
}

export type PveJobsDeps = Pick<ForeignJobsDeps, "ledger" | "runner" | "isShuttingDown">;

export interface PveDaemonPart {
  readonly engine: VzdumpEngine;
  readonly hookServer: HookServer;
  /** Starts the hook server and (re)writes the hook launcher; backups Proxmox starts get jobs from now on. */
  start(jobs: PveJobsDeps): Promise<void>;
  /** Closes the hook server (its socket file goes) and the database connection. Idempotent. */
  close(): Promise<void>;
}

/**
 * Notes on jobs through the ledger. A job that has ended takes no more transitions (the start-up
 * cleanup runs after recovery settled the interrupted jobs): its note is appended to its events
 * and published, with the job left as it is.
 */
function ledgerNoter(ledger: JobLedger): JobNoter {
  return (jobId, message) => {
    const job = ledger.store.getJob(jobId);
    if (!job) return true; // the job is gone (its record went with it): nothing to note on
    if (!isTerminal(job.phase)) ledger.apply(jobId, { type: "note", message });
    else ledger.noteEnded(job, eventFor(job, EventKind.EVENT_KIND_NOTE, { message }));
    return true;
  };
}

/** True when some configured guest is backed up by vzdump. */
export function usesVzdump(config: Readonly<AgentConfig>): boolean {
  return config.guests.some((g) => g.engine === "vzdump");
}

export function createPveDaemonPart(deps: PveDaemonDeps): PveDaemonPart {
  const { config, clock } = deps;
  const pve = config.pve;
  const log = deps.log.child({ component: "pve" });
  const runner = deps.runner ?? createExecaRunner({ log });
  const shutdowns = new VzdumpShutdownStore(deps.database);
  let follow: ForeignBackupHandler | undefined;
  let noteJob: JobNoter = () => false;
  const hookServer = new HookServer({
    socketPath: pve.hook.socketPath,
    log,
    onForeignBackup: (message) => follow?.(message),
  });
  const launcher = createExecaLauncher();
  const engine = createVzdumpEngine({
    pve,
    node: config.node,
    runner,
    launcher,
    hookServer,
    hookScriptPath: pve.hook.scriptPath,
    clock,
    log,
    // The vzdump engine creates no prefixed snapshots of its own: the native engine sweeps those.
    cleanup: new PveCleanup({ pve, node: config.node, runner, launcher, log, clock, shutdowns, noteJob: (jobId, message) => noteJob(jobId, message) }),
    shutdowns,
  });
  let started = false;
  // Re-tries the crash cleanup for shutdowns still open; one at a time, aborted and awaited at close.
  let recheck: NodeJS.Timeout | undefined;
  let checking: Promise<void> | undefined;
  const stopChecks = new AbortController();
  const checkShutdowns = () => {
    checking ??= engine
      .settleOpenShutdowns(stopChecks.signal)
      .then(
        (done) => {
          if (done.length > 0) log.info({ done }, "open vzdump shutdowns settled");
        },
        (err: unknown) => {
          if (!stopChecks.signal.aborted) log.warn({ err: err instanceof Error ? err.message : String(err) }, "crash cleanup of open vzdump shutdowns failed");
        },
      )
      .finally(() => (checking = undefined));
  };
  return {
    engine,
    hookServer,
    async start(jobs) {
      noteJob = ledgerNoter(jobs.ledger);
      // What the start-up cleanup did about guests vzdump had shut down goes on their (settled) jobs.
      const noted = noteSettledShutdowns(shutdowns, noteJob, clock, log);
      if (noted > 0) log.info({ noted }, "crash cleanup outcomes noted on their jobs");
      follow = foreignBackupHandler({ config, commandRunner: runner, clock, log, shutdowns, ...jobs });
      await hookServer.start();
      started = true;
      recheck = setInterval(checkShutdowns, pve.vzdump.shutdownRecheckMs);
      recheck.unref();
      const script = await installHookLauncher({ ...pve.hook });
      log.info({ script, socketPath: pve.hook.socketPath, guests: config.guests.filter((g) => g.engine === "vzdump").map((g) => g.id) }, "vzdump hook installed");
    },
    async close() {
      follow = undefined;
      clearInterval(recheck);
      stopChecks.abort();
      await checking;
      noteJob = () => false;
      if (started) {
        started = false;
        await hookServer.close();
      }
    },
  };
}
