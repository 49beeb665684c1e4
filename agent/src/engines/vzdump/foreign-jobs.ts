// Jobs for backups Proxmox starts by itself (pvescheduler, the GUI, `vzdump` by hand) with Lull's
// hook as its script: the hook server hands their `backup-start` here. For a configured vzdump
// guest a job is created through the normal path (store + ledger: persisted, announced to
// watchers, `requested_by` says who started it) and run by the JobRunner with an engine that only
// follows the hooks (followForeignBackup): controllers quiesce at pre-stop and resume at
// `snapshotted` exactly as for the agent's own runs, and the job ends at vzdump's `log-end`.
//
//   - a guest this agent does not manage, or an agent that is stopping: not followed (the hook
//     answers `ok`; the backup goes on as it would without Lull);
//   - a guest with a job already running: not followed, and a note on that job says so;
//   - the vzdump worker dies without `log-end` (SIGKILL): the job fails, checked every few seconds;
//     a guest it had shut down in stop mode is recorded (`shutdowns`), so the agent's crash cleanup
//     (its recheck of open shutdowns, or its next start) starts it again when that is safe;
//   - the job is cancelled: the job ends `cancelled`; vzdump is not stopped, but a later pre-stop of
//     that guest is vetoed (the job has ended), so a cancel before pre-stop keeps the backup from
//     being taken.
import { EventKind } from "@lull/proto";
import { asLullError, LullError, type Clock, type Logger } from "@lull/shared";
import type { AgentConfig, GuestConfig } from "../../config.js";
import type { BackupEngine, EngineResult, EngineRun } from "../engine.js";
import type { CommandRunner } from "@lull/shared";
import type { ForeignBackupHandler } from "../../hook/hook-server.js";
import type { HookMessage } from "../../hook/hook-protocol.js";
import { newJobId } from "../../jobs/job-id.js";
import { eventFor, newJobRecord, type JobRecord } from "../../jobs/job.js";
import type { JobLedger } from "../../jobs/ledger.js";
import { quiesceSettings } from "../../jobs/policy.js";
import type { JobRunner } from "../../jobs/runner.js";
import { followForeignBackup } from "./foreign-backup.js";
import { stopModeRecorder, type VzdumpShutdownStore } from "./shutdown-store.js";
import type { VzdumpRun } from "./run.js";

/** `requested_by` of the jobs of backups Proxmox started. */
export const FOREIGN_REQUESTER = "vzdump (started by Proxmox)";
/** How often a followed vzdump worker is checked for being alive. */
export const WORKER_CHECK_MS = 2_000;


export interface ForeignJobsDeps {
  config: Readonly<AgentConfig>;
  ledger: JobLedger;
  runner: Pick<JobRunner, "start">;
  /** pct/qm calls of the followed run (the LXC snapshot check). */
  commandRunner: CommandRunner;
  clock: Clock;
  log: Logger;
  isShuttingDown: () => boolean;
  /** Is this process alive? Default: signal 0. */
  isAlive?: (pid: number) => boolean;
  /** Stop-mode shutdowns of guests; absent: not recorded. */
  shutdowns?: VzdumpShutdownStore;
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

interface Deferred<T> {
  promise: Promise<T>;
  resolve(value: T): void;
}

function deferred<T>(): Deferred<T> {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

/** The vzdump worker that runs the hook (the hook's parent), if the message names one. */
function workerPid(message: HookMessage): number | undefined {
  return message.pids[0];
}

/** An engine that follows one foreign vzdump run through its hooks; it never starts anything. */
function followingEngine(message: HookMessage, ready: Deferred<VzdumpRun | undefined>, deps: ForeignJobsDeps): BackupEngine {
  const { config, clock } = deps;
  const isAlive = deps.isAlive ?? pidAlive;
  return {
    name: "vzdump",
    async run(run: EngineRun): Promise<EngineResult> {
      const vmtype = message.env.VMTYPE === "qemu" ? "qemu" : "lxc";
      const shutdowns = deps.shutdowns && stopModeRecorder(deps.shutdowns, { jobId: run.jobId, vmid: message.vmid!, vmtype }, clock);
      const session = followForeignBackup(message, run.hooks, { runner: deps.commandRunner, pve: config.pve, log: run.log, clock, ...(shutdowns ? { shutdowns } : {}) });
      ready.resolve(session);
      const stop = new AbortController();
      const signal = AbortSignal.any([run.signal, stop.signal]);
      const worker = workerPid(message);
      const watchWorker = async (): Promise<never> => {
        for (;;) {
          await clock.sleep(WORKER_CHECK_MS, signal);
          if (worker !== undefined && !isAlive(worker)) {
            throw new LullError("LULL_E_COMMAND_FAILED", `vzdump (pid ${worker}) ended without finishing the backup of guest ${message.vmid} (no log-end hook)`);
          }
        }
      };
      const cancelled = new Promise<never>((_, reject) => {
        const onAbort = () =>
          reject(new LullError("LULL_E_CANCELLED", `following the backup of guest ${message.vmid} stopped; the vzdump Proxmox started is not stopped by Lull`));
        if (run.signal.aborted) onAbort();
        else run.signal.addEventListener("abort", onAbort, { once: true });
      });
      try {
        return await Promise.race([session.hookOutcome(), cancelled, watchWorker()]);
      } catch (err) {
        throw run.signal.aborted ? new LullError("LULL_E_CANCELLED", asLullError(err).message) : err;
      } finally {
        stop.abort();
        session.stop();
      }
    },
    async sweep(): Promise<string[]> {
      return [];
    },
  };
}

function noteBusy(deps: ForeignJobsDeps, guest: GuestConfig, message: HookMessage): void {
  const active = deps.ledger.store.activeJob(guest.id);
  const why = `Proxmox started its own backup of guest ${guest.id} (vzdump pid ${workerPid(message) ?? "?"}, ${message.mode} mode) while this job runs: that backup is not quiesced by Lull`;
  deps.log.warn({ guestId: guest.id, activeJob: active?.id ?? null, pids: message.pids }, "backup started outside the agent while a job of the guest runs: not followed");
  if (!active) return;
  try {
    deps.ledger.apply(active.id, { type: "note", message: why });
  } catch (err) {
    deps.log.debug({ jobId: active.id, err }, "note not recorded");
  }
}

function newForeignJob(deps: ForeignJobsDeps, guest: GuestConfig): JobRecord {
  const { config, clock } = deps;
  const now = clock.now();
  const id = newJobId(now);
  return newJobRecord({
    id,
    guestId: guest.id,
    engine: "vzdump",
    ...quiesceSettings(config, guest),
    idempotencyKey: id,
    requestedBy: FOREIGN_REQUESTER,
    now,
  });
}

/** The hook server's onForeignBackup: a job per followed backup, its session once the run started. */
export function foreignBackupHandler(deps: ForeignJobsDeps): ForeignBackupHandler {
  const { config, ledger, log } = deps;
  return async (message) => {
    const guest = config.guests.find((g) => g.id === String(message.vmid));
    if (!guest || guest.engine !== "vzdump") {
      log.info({ vmid: message.vmid, mode: message.mode }, "backup of a guest this agent does not back up with vzdump: not followed");
      return undefined;
    }
    if (deps.isShuttingDown()) {
      log.warn({ vmid: message.vmid }, "backup started outside the agent while it stops: not followed");
      return undefined;
    }
    const record = newForeignJob(deps, guest);
    let job: JobRecord;
    try {
      job = ledger.create(record, eventFor(record, EventKind.EVENT_KIND_PHASE)).job;
    } catch (err) {
      if (asLullError(err).code !== "LULL_E_GUEST_BUSY") throw err;
      noteBusy(deps, guest, message);
      return undefined;
    }
    log.info({ jobId: job.id, guestId: guest.id, mode: message.mode, pids: message.pids }, "job created for a backup Proxmox started");
    const ready = deferred<VzdumpRun | undefined>();
    deps.runner.start(job, followingEngine(message, ready, deps));
    // The run creates the session at once; only a crash-test failpoint holds it back. vzdump's hook
    // gives up waiting after pve.hook.replyTimeoutMs, so this wait is bounded by the same.
    const timer = new AbortController();
    void deps.clock.sleep(config.pve.hook.replyTimeoutMs, timer.signal).then(
      () => ready.resolve(undefined),
      () => undefined,
    );
    const session = await ready.promise;
    timer.abort();
    if (!session) log.warn({ jobId: job.id }, "the followed run did not start in time; this backup's hooks go unanswered by the job");
    return session;
  };
}
