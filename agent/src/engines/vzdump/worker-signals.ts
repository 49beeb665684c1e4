// Stopping a vzdump this agent started (cancel, timeout, agent stop), the way vzdump's own CLI
// relay does it. The vzdump CLI is two processes (PVE::RESTEnvironment::fork_worker): the process
// the agent started only relays output; the job runs in a forked worker that called setsid(), so
// it leads its own process group, and whose UPID is in /var/run/vzdump.pid. The relay ignores TERM
// outside its relay loop and, inside it, forwards each TERM to the worker's process group (TERM
// three times, then KILL). SIGKILLing the relay alone leaves the worker running without anyone
// reading its output: its next print raises SIGPIPE, which it turns into "interrupted by signal"
// wherever it is — in stop mode typically after it unlocked the guest and before it starts it
// again, so the guest stays down. Hence:
//   t = 0               TERM to the relay (it forwards it to the worker's group, as a ^C would);
//   every repeatMs      TERM to the worker's process group again while the worker lives: a TERM
//                       can be lost (PVE::LXC::vm_stop runs lxc-stop in an eval that swallows the
//                       worker's "interrupted by signal" die, and vzdump then goes on), and a later
//                       one lets vzdump's own cleanup run — unlock, restart the guest, remove partials.
//                       Held back while the group runs a command a TERM would kill mid-clean-up (the
//                       hook script, lxc-start, `pct|qm start`): exec_backup_task's restart step is
//                       `eval { pre-restart hook; start_vm; post-restart hook }; warn $@`, so a TERM
//                       that kills the pre-restart hook skips the start and leaves the guest down;
//   t = graceMs         KILL to the worker's process group, never the relay alone while a worker
//                       lives (the relay sees EOF and ends by itself);
//   t = graceMs + 10 s  KILL to the relay if it is still there.
// The worker is found as the relay's child that leads its own session (/proc/<pid>/stat).
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import type { Logger } from "@lull/shared";

export interface VzdumpStopperOptions {
  relayPid: number;
  graceMs: number;
  /** How often TERM is sent to the worker's group again; default min(5 s, graceMs / 4). */
  repeatMs?: number;
  procDir?: string;
  log: Logger;
  /** Sends a signal (tests); default process.kill. A negative pid is a process group. */
  kill?: (pid: number, signal: NodeJS.Signals) => void;
  /** A member of the worker's group a repeated TERM must not hit (default: spareDuringCleanup()). */
  spare?: (argv: string[]) => boolean;
}

/**
 * The commands of vzdump's clean-up a TERM would kill and so skip a step of it: the hook script
 * (`pre-restart` runs before the start, in the same eval), lxc-start, and `pct|qm start`.
 */
export function spareDuringCleanup(hookScriptPath?: string): (argv: string[]) => boolean {
  return (argv) => {
    if (hookScriptPath !== undefined && argv.some((a) => a === hookScriptPath)) return true;
    const name = (argv[0] ?? "").split("/").at(-1) ?? "";
    if (name === "lxc-start") return true;
    return (name === "pct" || name === "qm") && argv[1] === "start";
  };
}

/** The members of process group `pgrp` but its leader, with their argv (empty for a zombie). */
export async function groupMembers(pgrp: number, procDir = "/proc"): Promise<Array<{ pid: number; argv: string[] }>> {
  const out: Array<{ pid: number; argv: string[] }> = [];
  for (const name of await readdir(procDir).catch(() => [] as string[])) {
    if (!/^\d+$/.test(name) || Number(name) === pgrp) continue;
    const stat = await readFile(join(procDir, name, "stat"), "utf8").catch(() => undefined);
    if (stat === undefined) continue;
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    if (Number(f[2]) !== pgrp) continue;
    const cmdline = await readFile(join(procDir, name, "cmdline"), "utf8").catch(() => "");
    out.push({ pid: Number(name), argv: cmdline.split("\0").filter((a) => a !== "") });
  }
  return out;
}

/** The vzdump worker of a relay: its child that leads its own session (setsid), if alive. */
export async function findVzdumpWorker(relayPid: number, procDir = "/proc"): Promise<number | undefined> {
  const names = await readdir(procDir).catch(() => [] as string[]);
  for (const name of names) {
    if (!/^\d+$/.test(name)) continue;
    const stat = await readFile(join(procDir, name, "stat"), "utf8").catch(() => undefined);
    if (stat === undefined) continue;
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // fields after the comm: state ppid pgrp session …
    if (Number(f[1]) === relayPid && Number(f[3]) === Number(name)) return Number(name);
  }
  return undefined;
}

export class VzdumpStopper {
  private started = false;
  private readonly timers: NodeJS.Timeout[] = [];
  private readonly kill: (pid: number, signal: NodeJS.Signals) => void;

  constructor(private readonly o: VzdumpStopperOptions) {
    this.kill = o.kill ?? ((pid, signal) => process.kill(pid, signal));
  }

  private send(pid: number, signal: NodeJS.Signals): boolean {
    try {
      this.kill(pid, signal);
      return true;
    } catch {
      return false; // gone already
    }
  }

  private async worker(): Promise<number | undefined> {
    return findVzdumpWorker(this.o.relayPid, this.o.procDir);
  }

  /** True once stop() was called: this agent has signalled the run's vzdump. */
  get stopping(): boolean {
    return this.started;
  }

  /** A member of the worker's group a TERM now would kill mid-clean-up, if any. */
  private async spared(worker: number): Promise<{ pid: number; argv: string[] } | undefined> {
    const spare = this.o.spare ?? spareDuringCleanup();
    return (await groupMembers(worker, this.o.procDir)).find((m) => spare(m.argv));
  }

  /** Starts the stop sequence (once); dispose() ends it when vzdump has exited. */
  stop(why: string): void {
    if (this.started) return;
    this.started = true;
    const { relayPid, graceMs, log } = this.o;
    const repeatMs = this.o.repeatMs ?? Math.max(250, Math.min(5_000, Math.floor(graceMs / 4)));
    log.info({ relayPid, why, graceMs }, "stopping vzdump: TERM to its CLI process, which forwards it to the worker's process group");
    this.send(relayPid, "SIGTERM");
    const again = setInterval(() => {
      void (async () => {
        const w = await this.worker();
        if (w === undefined) return;
        const busy = await this.spared(w);
        if (busy !== undefined) {
          log.info({ worker: w, pid: busy.pid, argv: busy.argv }, "vzdump worker runs a clean-up step a TERM would skip: TERM held back");
          return;
        }
        if (this.send(-w, "SIGTERM")) log.info({ worker: w }, "vzdump worker still runs: TERM to its process group again");
      })();
    }, repeatMs);
    again.unref();
    this.timers.push(again);
    const hard = setTimeout(() => {
      clearInterval(again);
      void this.worker().then((w) => {
        if (w !== undefined) {
          log.warn({ worker: w, graceMs }, "vzdump worker did not end within the grace: KILL to its process group");
          this.send(-w, "SIGKILL");
        }
        const last = setTimeout(() => {
          if (this.send(relayPid, 0 as unknown as NodeJS.Signals)) {
            log.warn({ relayPid }, "vzdump's CLI process did not end after its worker: KILL");
            this.send(relayPid, "SIGKILL");
          }
        }, 10_000);
        last.unref();
        this.timers.push(last);
      });
    }, graceMs);
    hard.unref();
    this.timers.push(hard);
  }

  dispose(): void {
    for (const t of this.timers) clearTimeout(t);
    this.timers.length = 0;
  }
}
