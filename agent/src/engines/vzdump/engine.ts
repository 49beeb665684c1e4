// The vzdump engine (Proxmox): one `vzdump <vmid> --mode snapshot --script <lull hook> …` per job,
// serialised per node (vzdump itself allows one job per node; waiting here keeps a job `queued`
// instead of sitting on vzdump's global lock). Before a run: the guest is discovered (pvesh,
// pct/qm config, storage.cfg), a locked guest is refused, and where vzdump takes an LVM snapshot
// (a running container in snapshot mode: takesLvmSnapshot) every LVM-thin pool the guest uses is
// checked (data%/metadata%). During the run the hook server routes the guest's hook phases to
// a VzdumpRun, which also reads vzdump's output lines (see ./run.ts for the mapping).
// In stop mode the run records the guest's shutdown before vzdump does it (./shutdown-store.ts);
// when vzdump ends without having started the guest again, the crash cleanup runs at once
// (../../pve/cleanup.ts: it starts the guest only when that is safe) and its outcome is noted on the job.
import { asLullError, LullError, validate, type Clock, type Logger } from "@lull/shared";
import type { GuestConfig } from "../../config.js";
import type { CommandRunner } from "@lull/shared";
import type { HookServer } from "../../hook/hook-server.js";
import type { PveCleanup } from "../../pve/cleanup.js";
import { VMID, type PveConfig, type VzdumpConfig } from "../../pve/config.js";
import type { VzdumpMode } from "../../hook/hook-protocol.js";
import { GuestDiscovery, vzdumpSnapshotCommitted } from "../../pve/discovery.js";
import type { Launcher } from "@lull/shared";
import { stopModeRecorder, type VzdumpShutdownStore } from "./shutdown-store.js";
import { guardThinPools } from "../../storage/thin-pool.js";
import { VzdumpRun } from "./run.js";
import { spareDuringCleanup, VzdumpStopper } from "./worker-signals.js";
import type { BackupEngine, EngineResult, EngineRun } from "../engine.js";

export interface VzdumpEngineDeps {
  pve: PveConfig;
  /** This node's name, as Proxmox knows it. */
  node: string;
  runner: CommandRunner;
  launcher: Launcher;
  hookServer: Pick<HookServer, "attach">;
  /** The installed hook launcher (installHookLauncher's path). */
  hookScriptPath: string;
  clock: Clock;
  log: Logger;
  /** Start-up sweep (crash cleanup); without it sweep() removes nothing. */
  cleanup?: PveCleanup;
  /** Stop-mode shutdowns of guests (the crash cleanup starts a guest vzdump left shut down); absent: not recorded. */
  shutdowns?: VzdumpShutdownStore;
  /** Extra environment for vzdump (tests put the fake toolbox on PATH). */
  vzdumpEnv?: Record<string, string>;
}

/** argv of the vzdump call for one guest. */
export function vzdumpArgs(vmid: number, vzdump: VzdumpConfig, hookScriptPath: string): string[] {
  const args = [String(vmid), "--mode", vzdump.mode, "--script", hookScriptPath];
  if (vzdump.storage !== undefined) args.push("--storage", vzdump.storage);
  if (vzdump.dumpdir !== undefined) args.push("--dumpdir", vzdump.dumpdir);
  args.push("--compress", vzdump.compress, "--lockwait", String(vzdump.lockwaitMinutes));
  if (vzdump.bwlimitKiB !== undefined) args.push("--bwlimit", String(vzdump.bwlimitKiB));
  if (vzdump.ionice !== undefined) args.push("--ionice", String(vzdump.ionice));
  return args;
}

/**
 * Does this vzdump run take an LVM snapshot, so that a nearly full thin pool can break it? Only an
 * LXC backup in snapshot mode of a running container (pve-container's VZDump::LXC::snapshot, via
 * PVE::Storage::volume_snapshot); a stopped guest is backed up in stop mode (VZDump::exec_backup_task),
 * stop and suspend mode take none, and QEMU never snapshots its volumes (the backup job's
 * copy-before-write is its point in time).
 */
export function takesLvmSnapshot(type: "lxc" | "qemu", status: string, mode: VzdumpMode): boolean {
  return type === "lxc" && mode === "snapshot" && status === "running";
}

export function parseVmid(guestId: string): number {
  validate.guestId(guestId);
  if (!VMID.test(guestId)) throw new LullError("LULL_E_CONFIG_INVALID", `guest ${guestId}: the vzdump engine needs a Proxmox vmid as the guest id`);
  return Number(guestId);
}

const WORKER_END_WAIT_MS = 5_000;

export class VzdumpEngine implements BackupEngine {
  readonly name = "vzdump" as const;
  private tail: Promise<void> = Promise.resolve();
  private readonly discovery: GuestDiscovery;

  constructor(private readonly deps: VzdumpEngineDeps) {
    this.discovery = new GuestDiscovery({
      runner: deps.runner,
      node: deps.node,
      storageCfgPath: deps.pve.storageCfgPath,
      commandTimeoutMs: deps.pve.commandTimeoutMs,
    });
  }

  /** Runs fn after every earlier vzdump of this engine has ended (one vzdump per node). */
  private async serialized<T>(fn: () => Promise<T>, signal: AbortSignal): Promise<T> {
    const previous = this.tail;
    let done!: () => void;
    const mine = new Promise<void>((resolve) => (done = resolve));
    this.tail = previous.then(() => mine);
    try {
      await new Promise<void>((resolve, reject) => {
        const onAbort = () => reject(new LullError("LULL_E_CANCELLED", "cancelled while waiting for another vzdump on this node"));
        if (signal.aborted) return onAbort();
        signal.addEventListener("abort", onAbort, { once: true });
        void previous.then(() => {
          signal.removeEventListener("abort", onAbort);
          resolve();
        });
      });
      return await fn();
    } finally {
      done();
    }
  }

  run(run: EngineRun): Promise<EngineResult> {
    const vmid = parseVmid(run.guest.id);
    return this.serialized(() => this.runOne(vmid, run), run.signal);
  }

  private async runOne(vmid: number, run: EngineRun): Promise<EngineResult> {
    const { pve, runner, launcher, hookServer, clock } = this.deps;
    const log = run.log.child({ engine: "vzdump", vmid });
    const vzdump = { ...pve.vzdump, mode: (run.guest.engine === "vzdump" ? run.guest.mode : undefined) ?? pve.vzdump.mode };
    const guest = await this.discovery.guest(vmid, run.signal);
    if (guest.lock !== undefined) {
      const hint = guest.lock === "backup" ? " (left by a crashed vzdump? the agent's start-up sweep or `pct unlock`/`qm unlock` clears it)" : "";
      throw new LullError("LULL_E_GUEST_BUSY", `guest ${vmid} is locked (${guest.lock})${hint}`);
    }
    const pools = takesLvmSnapshot(guest.type, guest.status, vzdump.mode)
      ? guest.volumes.flatMap((v) => (v.lvm?.thinpool !== undefined ? [{ vg: v.lvm.vg, pool: v.lvm.thinpool }] : []))
      : [];
    const usages = await guardThinPools(runner, pools, pve.thinPool, { signal: run.signal, timeoutMs: pve.commandTimeoutMs });
    for (const u of usages) {
      run.hooks.note(`thin pool ${u.vg}/${u.pool}: data ${u.dataPercent.toFixed(2)}%, metadata ${u.metadataPercent.toFixed(2)}%`);
    }
    const session = new VzdumpRun({
      vmid,
      vmtype: guest.type,
      requestedMode: vzdump.mode,
      hooks: run.hooks,
      log,
      clock,
      progressIntervalMs: vzdump.progressIntervalMs,
      ...(run.groupRunId !== undefined ? { groupRunId: run.groupRunId } : {}),
      snapshotCommitted: () => vzdumpSnapshotCommitted(runner, vmid, pve.commandTimeoutMs),
      ...(this.deps.shutdowns ? { shutdowns: stopModeRecorder(this.deps.shutdowns, { jobId: run.jobId, vmid, vmtype: guest.type }, clock) } : {}),
    });
    const detach = hookServer.attach(vmid, session);
    try {
      const args = vzdumpArgs(vmid, vzdump, this.deps.hookScriptPath);
      log.info({ argv: [vzdump.command, ...args], type: guest.type, status: guest.status }, "vzdump starting");
      // Cancel and timeout are not the launcher's (it would SIGKILL the CLI process alone after the
      // grace, leaving vzdump's worker to die of SIGPIPE mid-cleanup): ./worker-signals.ts stops it.
      const proc = launcher.launch(vzdump.command, args, {
        onLine: (line) => session.onLine(line),
        stopGraceMs: vzdump.stopGraceMs,
        ...(this.deps.vzdumpEnv !== undefined ? { env: this.deps.vzdumpEnv } : {}),
      });
      session.pid = proc.pid;
      let timedOut = false;
      const stopper = proc.pid !== undefined ? new VzdumpStopper({ relayPid: proc.pid, graceMs: vzdump.stopGraceMs, log, spare: spareDuringCleanup(this.deps.hookScriptPath) }) : undefined;
      const onAbort = () => (stopper ? stopper.stop("cancelled") : proc.kill());
      run.signal.addEventListener("abort", onAbort, { once: true });
      if (run.signal.aborted) onAbort();
      const timer = setTimeout(() => {
        timedOut = true;
        if (stopper) stopper.stop(`timed out after ${vzdump.timeoutMs} ms`);
        else proc.kill();
      }, vzdump.timeoutMs);
      timer.unref();
      let exit = await proc.exit;
      clearTimeout(timer);
      stopper?.dispose();
      run.signal.removeEventListener("abort", onAbort);
      exit = { ...exit, timedOut: exit.timedOut || timedOut, cancelled: exit.cancelled || run.signal.aborted };
      log.info({ exitCode: exit.exitCode, signal: exit.signal, mode: session.mode }, "vzdump ended");
      const failed = exit.exitCode !== 0 || exit.cancelled || exit.timedOut;
      if (failed) await this.workerEnded(log);
      await this.cleanUpShutdowns(run, vmid, log, { failedSuspend: failed && session.mode === "suspend", signalledByAgent: stopper?.stopping === true });
      return await session.outcome(exit, run.signal);
    } finally {
      detach();
      session.stop();
    }
  }

  /**
   * After vzdump ended: a guest it shut down (stop mode) and did not start again — this run's, or an
   * earlier one's the last cleanup could not settle — gets the crash cleanup now. Never throws: the
   * run's own outcome stays what vzdump made it; what the cleanup did is noted on the job.
   */
  private async cleanUpShutdowns(run: EngineRun, vmid: number, log: Logger, o: { failedSuspend: boolean; signalledByAgent: boolean }): Promise<void> {
    const { failedSuspend, signalledByAgent } = o;
    const { cleanup, shutdowns } = this.deps;
    const open = shutdowns?.open(run.jobId) ?? [];
    if (failedSuspend && cleanup && open.length === 0) {
      // A suspend-mode run that failed or was cancelled may leave its guest paused or frozen (a
      // worker killed before its cleanup): the sweep resumes/thaws it, once no vzdump runs.
      try {
        const done = await cleanup.sweep(undefined, { jobId: run.jobId, note: (message) => run.hooks.note(message) });
        for (const d of done) this.noteSafely(run, log, `crash cleanup after vzdump: ${d}`);
      } catch (err) {
        this.noteSafely(run, log, `crash cleanup after vzdump: ${asLullError(err).message}`);
      }
      return;
    }
    if (!cleanup || !shutdowns || open.length === 0) return;
    const note = (message: string) => {
      try {
        run.hooks.note(message);
      } catch (err) {
        log.warn({ err: asLullError(err).message }, "crash cleanup note not recorded");
      }
    };
    log.warn({ open: open.map((s) => ({ jobId: s.jobId, vmid: s.vmid })) }, "vzdump ended with a guest it shut down not started again: crash cleanup");
    try {
      // Not run.signal: a cancelled run still gets its guest started (each command has its own timeout).
      await cleanup.sweep(undefined, { jobId: run.jobId, note: (message) => run.hooks.note(message), signalledByAgent });
    } catch (err) {
      note(`crash cleanup after vzdump: ${asLullError(err).message}`);
    }
    const mine = shutdowns.get(run.jobId);
    if (mine !== undefined && mine.restartedAt === undefined && mine.settledAt === undefined) {
      note(`guest ${vmid}: vzdump shut it down (stop mode) and did not start it again; it is not started yet (a vzdump runs, the cleanup failed, or it may still be powering off): the crash cleanup tries again (every pve.vzdump.shutdownRecheckMs while no vzdump runs, and at the agent's next start)`);
    }
  }

  /**
   * The CLI process can end before its worker does (both killed at once; the relay gone first): a
   * failed run's clean-up waits up to WORKER_END_WAIT_MS for the pid file's worker to end, so it
   * does not take this run's own dying worker for a vzdump that still runs.
   */
  private async workerEnded(log: Logger): Promise<void> {
    const cleanup = this.deps.cleanup;
    if (!cleanup) return;
    const until = Date.now() + WORKER_END_WAIT_MS;
    while ((await cleanup.vzdumpProcess()).running) {
      if (Date.now() >= until) {
        log.info("a vzdump worker still runs after this run's vzdump ended");
        return;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  private noteSafely(run: EngineRun, log: Logger, message: string): void {
    try {
      run.hooks.note(message);
    } catch (err) {
      log.warn({ err: asLullError(err).message }, "crash cleanup note not recorded");
    }
  }

  /**
   * The crash cleanup again, for guests vzdump shut down that are still open (a vzdump ran when the
   * cleanup last looked): only when some are open and no vzdump runs, and never during a run of
   * this engine. Throws like sweep().
   */
  async settleOpenShutdowns(signal: AbortSignal): Promise<string[]> {
    const { cleanup, shutdowns } = this.deps;
    if (!cleanup || !shutdowns || shutdowns.open().length === 0) return [];
    return this.serialized(async () => {
      if (shutdowns.open().length === 0 || (await cleanup.vzdumpProcess()).running) return [];
      return cleanup.sweep(signal);
    }, signal);
  }

  async sweep(_guests: readonly GuestConfig[], signal?: AbortSignal): Promise<string[]> {
    if (!this.deps.cleanup) return [];
    return this.deps.cleanup.sweep(signal);
  }
}

export function createVzdumpEngine(deps: VzdumpEngineDeps): VzdumpEngine {
  return new VzdumpEngine(deps);
}
