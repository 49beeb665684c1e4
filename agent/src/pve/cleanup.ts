// Crash cleanup on a Proxmox node (agent start, and the vzdump engine's sweep):
//   (the agent's own lvmthin/zfs snapshots are the native engine's: its start-up sweep removes them
//   by prefix through the drivers' sweep, not this cleanup)
//   ONLY when no vzdump is running (its pid file's UPID names a live process with the same
//   start time), because everything below is what a running vzdump legitimately holds:
//   2. stale guest locks: `lock: backup` → pct/qm unlock; `lock: snapshot|snapshot-delete` only when
//      it is vzdump's own snapshot (`pct config <id> --snapshot vzdump` exists);
//   3. a leftover vzdump snapshot of a container → `pct delsnapshot <id> vzdump --force`;
//   4. a container left frozen (`lxc-info -n <id> -s` says FROZEN) → `lxc-unfreeze -n <id>`;
//      a VM that vzdump left paused → `qm resume`, with frozen guest filesystems → fsfreeze-thaw;
//      a VM in `prelaunch` (the kvm vzdump started only for the backup, never run) → `qm stop`,
//      never `qm resume` (that would boot a guest its user had stopped);
//   5. a guest vzdump shut down in stop mode and never started again (a shutdown record of an ended
//      job, ../engines/vzdump/shutdown-store.ts) → `pct start <vmid>` / `qm start <vmid>`, after its lock is
//      cleared, only when it is stopped now and nobody else took it over (./restart-decision.ts);
//   6. partial archives of this node's guests: `vzdump-<type>-<vmid>-<stamp>.{tar,vma}.dat`, `….dat` and
//      `….tmp` in the dump dirs, `vzdumptmp<pid>_<vmid>` of dead vzdumps in the tmp dir.
// It runs at agent start (recovery calls the engine's sweep) and after a vzdump run that left a
// shutdown open (the vzdump engine; `ending` names that run's job, which has not ended yet).
import { readdir, readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { LullError, systemClock, type Clock, type Logger } from "@lull/shared";
import type { CommandRunner, Launcher } from "@lull/shared";
import type { PveConfig } from "./config.js";
import { GuestDiscovery, readStorages, type GuestSummary } from "./discovery.js";
import { parseGuestConfig } from "./guest-config.js";
import { GuestRestarter, type JobNoter } from "./guest-restart.js";
import type { ShutdownRecords } from "./shutdown-records.js";
import { dumpDirOf } from "./storage-cfg.js";
import { parseUpid } from "./upid.js";
import { tryVzdumpLock, type HeldLock } from "./vzdump-lock.js";

export interface PveCleanupDeps {
  pve: PveConfig;
  node: string;
  runner: CommandRunner;
  log: Logger;
  /** Runs flock(1) to hold vzdump's global lock during the sweep; without it the sweep relies on the pid file alone. */
  launcher?: Launcher;
  /** Where process info is read (tests); default /proc. */
  procDir?: string;
  /** Guests vzdump shut down in stop mode; without it no guest is started again. */
  shutdowns?: ShutdownRecords;
  /** Puts the cleanup's outcome on a job; default: none now (the daemon notes them when it starts). */
  noteJob?: JobNoter;
  clock?: Clock;
}

/** The vzdump run whose job has not ended yet, when the cleanup runs right after it. */
export interface EndingRun {
  jobId: string;
  /** Notes on the run's job (its EngineHooks); throws when that job has ended. */
  note(message: string): void;
  /** The agent sent that run's vzdump TERM (cancel, timeout) and saw it exit (see ./restart-decision.ts). */
  signalledByAgent?: boolean;
}

export interface VzdumpProcess {
  running: boolean;
  upid?: string;
  pid?: number;
}

// `<basename>.tar.dat`/`.vma.dat` of a compressed archive, `<basename>.dat` of an uncompressed one
// (exec_backup_task: `s/\.[^\.]+$/\.dat/` on the target), `<basename>.tmp` (the tmpdir on a POSIX dump dir).
const PARTIAL = /^vzdump-(lxc|qemu)-(\d+)-\d{4}_\d{2}_\d{2}-\d{2}_\d{2}_\d{2}\.(?:(?:tar|vma)\.dat|dat|tmp)$/;
const TMPDIR = /^vzdumptmp(\d+)_(\d+)$/;

export class PveCleanup {
  private readonly discovery: GuestDiscovery;
  private readonly procDir: string;
  private readonly restarter: GuestRestarter | undefined;

  constructor(private readonly deps: PveCleanupDeps) {
    this.procDir = deps.procDir ?? "/proc";
    this.discovery = new GuestDiscovery({ runner: deps.runner, node: deps.node, storageCfgPath: deps.pve.storageCfgPath, commandTimeoutMs: deps.pve.commandTimeoutMs });
    this.restarter = deps.shutdowns
      ? new GuestRestarter({ shutdowns: deps.shutdowns, runner: deps.runner, log: deps.log, clock: deps.clock ?? systemClock, commandTimeoutMs: deps.pve.commandTimeoutMs, shutdownWatchMs: deps.pve.vzdump.shutdownWatchMs })
      : undefined;
  }

  private async startTicks(pid: number): Promise<number | undefined> {
    const stat = await readFile(join(this.procDir, String(pid), "stat"), "utf8").catch(() => undefined);
    if (stat === undefined) return undefined;
    return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19]);
  }

  /** Is the vzdump named in the pid file alive (same pid AND same process start time)? */
  async vzdumpProcess(): Promise<VzdumpProcess> {
    const upid = (await readFile(this.deps.pve.vzdump.pidFile, "utf8").catch(() => "")).trim();
    // The worker's UPID (fork_worker); its pstart has 9 hex digits on a node up for > ~497 days.
    const parsed = parseUpid(upid);
    if (!parsed) return { running: false };
    const ticks = await this.startTicks(parsed.pid);
    return { running: ticks !== undefined && ticks === parsed.pstart, upid, pid: parsed.pid };
  }

  private run(file: string, args: string[], signal?: AbortSignal, reject = true) {
    return this.deps.runner.run(file, args, { timeoutMs: this.deps.pve.commandTimeoutMs, reject, ...(signal ? { signal } : {}) });
  }

  private async hasVzdumpSnapshot(vmid: number, signal?: AbortSignal): Promise<boolean> {
    const r = await this.run("pct", ["config", String(vmid), "--snapshot", "vzdump"], signal, false);
    return r.exitCode === 0;
  }

  private async settleContainer(g: GuestSummary, done: string[], unlocked: Set<number>, signal?: AbortSignal): Promise<void> {
    const id = String(g.vmid);
    const vzdumpSnapshot = await this.hasVzdumpSnapshot(g.vmid, signal);
    if (g.lock === "backup" || ((g.lock === "snapshot" || g.lock === "snapshot-delete") && vzdumpSnapshot)) {
      await this.run("pct", ["unlock", id], signal);
      unlocked.add(g.vmid);
      done.push(`unlocked CT ${id} (lock: ${g.lock})`);
    } else if (g.lock !== undefined) {
      this.deps.log.info({ vmid: g.vmid, lock: g.lock }, "guest lock not vzdump's: left alone");
    }
    if (vzdumpSnapshot && (g.lock === undefined || g.lock === "backup" || g.lock === "snapshot" || g.lock === "snapshot-delete")) {
      await this.run("pct", ["delsnapshot", id, "vzdump", "--force"], signal);
      done.push(`removed vzdump snapshot of CT ${id}`);
    }
    if (g.status === "running") {
      const info = await this.run("lxc-info", ["-n", id, "-s"], signal, false);
      if (/State:\s+FROZEN/.test(info.stdout)) {
        await this.run("lxc-unfreeze", ["-n", id], signal);
        done.push(`thawed CT ${id}`);
      }
    }
  }

  private async settleVm(g: GuestSummary, done: string[], unlocked: Set<number>, signal?: AbortSignal): Promise<void> {
    if (g.lock !== "backup") return;
    const id = String(g.vmid);
    const status = (await this.run("qm", ["status", id], signal)).stdout.trim();
    const config = parseGuestConfig((await this.run("qm", ["config", id], signal)).stdout);
    await this.run("qm", ["unlock", id], signal);
    unlocked.add(g.vmid);
    done.push(`unlocked VM ${id} (lock: backup)`);
    if (status === "status: prelaunch") {
      // The kvm vzdump started for the backup (enforce_vm_running_for_backup: paused, never run):
      // `qm resume` would boot a guest that was stopped. vzdump's restore_vm_power_state stops it;
      // so does this. A stop-mode guest that ran before is started by the shutdown record (step 5).
      await this.run("qm", ["stop", id], signal);
      done.push(`stopped the kvm vzdump had started (prelaunch) for backing up VM ${id}`);
      return;
    }
    if (status === "status: paused") {
      await this.run("qm", ["resume", id], signal);
      done.push(`resumed VM ${id}`);
    }
    if (/^(1|.*enabled=1)/.test(config.get("agent") ?? "") && status !== "status: stopped") {
      const fs = await this.run("qm", ["guest", "cmd", id, "fsfreeze-status"], signal, false);
      if (fs.exitCode === 0 && fs.stdout.includes("frozen")) {
        await this.run("qm", ["guest", "cmd", id, "fsfreeze-thaw"], signal);
        done.push(`thawed the filesystems of VM ${id}`);
      }
    }
  }

  private async dumpDirs(): Promise<string[]> {
    if (this.deps.pve.vzdump.dumpdir !== undefined) return [this.deps.pve.vzdump.dumpdir];
    const storages = await readStorages(this.deps.pve.storageCfgPath);
    return [...storages.values()].flatMap((s) => dumpDirOf(s) ?? []);
  }

  private async removePartials(localVmids: ReadonlySet<number>, done: string[]): Promise<void> {
    for (const dir of await this.dumpDirs()) {
      for (const name of await readdir(dir).catch(() => [] as string[])) {
        const m = PARTIAL.exec(name);
        if (!m || !localVmids.has(Number(m[2]))) continue;
        await rm(join(dir, name), { recursive: true, force: true });
        done.push(`removed partial archive ${join(dir, name)}`);
      }
    }
    const tmp = this.deps.pve.vzdump.tmpDir;
    for (const name of await readdir(tmp).catch(() => [] as string[])) {
      const m = TMPDIR.exec(name);
      if (!m || (await this.startTicks(Number(m[1]))) !== undefined) continue;
      await rm(join(tmp, name), { recursive: true, force: true });
      done.push(`removed vzdump temp dir ${join(tmp, name)}`);
    }
  }

  /** Puts a cleanup outcome on its job: the ending run's own hooks, else the daemon's ledger (or later). */
  private noter(ending: EndingRun | undefined): JobNoter {
    return (jobId, message) => {
      if (ending !== undefined && jobId === ending.jobId) {
        try {
          ending.note(message);
          return true;
        } catch {
          // The run's job ended meanwhile (a cancel settled it): noted like any ended job's.
        }
      }
      return this.deps.noteJob?.(jobId, message) ?? false;
    };
  }

  /** Step 5 for every open shutdown record; the guests as listed (before) and those this cleanup unlocked. */
  private async restartShutdownGuests(
    guests: readonly GuestSummary[],
    unlocked: ReadonlySet<number>,
    vzdumpRunning: boolean,
    ending: EndingRun | undefined,
    attempt: (what: string, fn: () => Promise<void>) => Promise<void>,
    done: string[],
    failures: string[],
  ): Promise<void> {
    if (!this.restarter || !this.deps.shutdowns) return;
    const restarter = this.restarter;
    for (const record of this.deps.shutdowns.open(ending?.jobId)) {
      const summary = guests.find((g) => g.vmid === record.vmid && g.type === record.vmtype);
      await attempt(`starting guest ${record.vmid} again`, async () => {
        const own = ending?.signalledByAgent === true && record.jobId === ending.jobId;
        const outcome = await restarter.settle(record, summary && { summary, lockCleared: unlocked.has(record.vmid) }, vzdumpRunning, this.noter(ending), own);
        if (outcome.done !== undefined) done.push(outcome.done);
        if (outcome.failure !== undefined) failures.push(outcome.failure);
      });
    }
  }

  /**
   * Runs every step; returns what it did. Throws LULL_E_CLEANUP_FAILED (after trying all) when a step
   * failed. `ending`: the vzdump run this cleanup follows (its shutdown record counts although its job
   * has not ended, and its notes go through its own hooks).
   */
  async sweep(signal?: AbortSignal, ending?: EndingRun): Promise<string[]> {
    const done: string[] = [];
    const failures: string[] = [];
    const attempt = async (what: string, fn: () => Promise<void>) => {
      try {
        await fn();
      } catch (err) {
        failures.push(`${what}: ${err instanceof Error ? err.message : String(err)}`);
      }
    };
    // vzdump's global lock for the whole sweep: no vzdump can start (pvescheduler) while guests are settled.
    let lock: HeldLock | undefined;
    let lockBusy = false;
    if (this.deps.launcher) {
      try {
        lock = await tryVzdumpLock(this.deps.launcher, this.deps.pve.vzdump.lockFile);
        lockBusy = lock === undefined;
      } catch (err) {
        if (done.length > 0) this.deps.log.warn({ done }, "vzdump leftovers cleaned up");
        throw new LullError("LULL_E_CLEANUP_FAILED", `cleanup not done: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
    try {
      return await this.sweepLocked(lockBusy, done, failures, attempt, signal, ending);
    } finally {
      await lock?.release();
    }
  }

  private async sweepLocked(
    lockBusy: boolean,
    done: string[],
    failures: string[],
    attempt: (what: string, fn: () => Promise<void>) => Promise<void>,
    signal: AbortSignal | undefined,
    ending: EndingRun | undefined,
  ): Promise<string[]> {
    const vzdump = await this.vzdumpProcess();
    if (lockBusy) vzdump.running = true;
    if (vzdump.running) {
      this.deps.log.info({ upid: vzdump.upid, lockHeld: lockBusy }, "vzdump is running: guest locks, frozen guests and partial archives left alone");
      await this.restartShutdownGuests([], new Set(), true, ending, attempt, done, failures);
    } else {
      let guests: GuestSummary[] | undefined;
      await attempt("listing guests", async () => {
        guests = await this.discovery.list(signal);
      });
      const unlocked = new Set<number>();
      // A guest a still running job shut down is that run's: its own cleanup follows when it ends.
      const held = new Set((this.deps.shutdowns?.ofRunningJobs(ending?.jobId) ?? []).map((s) => s.vmid));
      for (const g of guests ?? []) {
        if (held.has(g.vmid)) {
          this.deps.log.info({ vmid: g.vmid }, "guest shut down for a job that still runs: left to that job");
          continue;
        }
        await attempt(`guest ${g.vmid}`, () => (g.type === "lxc" ? this.settleContainer(g, done, unlocked, signal) : this.settleVm(g, done, unlocked, signal)));
      }
      // Without the guest list nothing can be told about the guests: their shutdowns wait for the next cleanup.
      if (guests !== undefined) await this.restartShutdownGuests(guests, unlocked, false, ending, attempt, done, failures);
      await attempt("partial archives", () => this.removePartials(new Set((guests ?? []).map((g) => g.vmid)), done));
    }
    if (done.length > 0) this.deps.log.warn({ done }, "vzdump leftovers cleaned up");
    if (failures.length > 0) throw new LullError("LULL_E_CLEANUP_FAILED", `cleanup incomplete: ${failures.join("; ")}`);
    return done;
  }
}
