// The crash cleanup's last step for a guest that vzdump shut down in stop mode and never started
// again (../engines/vzdump/shutdown-store.ts has the record): read the guest's status, decide
// (./restart-decision.ts), and start it — `pct start <vmid>` / `qm start <vmid>` — when the decision
// says so. Every decision but `wait` settles the record with what was done and puts it on the job
// as a note (at once when the job ledger is there, otherwise when the daemon starts), then logs it.
// A start that fails is noted and logged, and reported to the caller as a failure; it never stops
// the rest of the cleanup.
import type { Clock, Logger } from "@lull/shared";
import type { CommandRunner } from "@lull/shared";
import type { GuestSummary } from "./discovery.js";
import { decideRestart } from "./restart-decision.js";
import type { ShutdownRecords, VzdumpShutdown } from "./shutdown-records.js";

/** vzdump's `stopwait` default: 10 minutes for `qm shutdown` / `lxc-stop`. */
export const DEFAULT_SHUTDOWN_WATCH_MS = 600_000;

/** Puts `message` on job `jobId` as a note; false when that is not possible now (it is retried later). */
export type JobNoter = (jobId: string, message: string) => boolean;

export interface GuestRestartDeps {
  shutdowns: ShutdownRecords;
  runner: CommandRunner;
  log: Logger;
  clock: Clock;
  commandTimeoutMs: number;
  /** How long after its shutdown a guest that still runs is awaited (vzdump's stopwait; default 10 min). */
  shutdownWatchMs?: number;
}

/** How the cleanup found the guest (before and after its own unlock). */
export interface GuestAtCleanup {
  summary: GuestSummary;
  lockCleared: boolean;
}

export interface RestartOutcome {
  /** A line for the cleanup's "done" list. */
  done?: string;
  /** A line for the cleanup's failures. */
  failure?: string;
}

function tool(vmtype: VzdumpShutdown["vmtype"]): "pct" | "qm" {
  return vmtype === "lxc" ? "pct" : "qm";
}

function lastLine(text: string): string {
  return text.trim().split("\n").at(-1) ?? "";
}

export class GuestRestarter {
  constructor(private readonly deps: GuestRestartDeps) {}

  private run(file: string, args: string[]) {
    return this.deps.runner.run(file, args, { timeoutMs: this.deps.commandTimeoutMs, reject: false });
  }

  /** `pct|qm status <vmid>` → running, stopped, paused, …; throws when the status cannot be read. */
  private async status(s: VzdumpShutdown): Promise<string> {
    const r = await this.run(tool(s.vmtype), ["status", String(s.vmid)]);
    const m = /^status:\s*(\S+)/m.exec(r.stdout);
    if (r.exitCode !== 0 || !m) throw new Error(`${tool(s.vmtype)} status ${s.vmid}: ${lastLine(r.stderr || r.stdout) || `exit ${r.exitCode}`}`);
    return m[1]!;
  }

  /**
   * Decides for one open shutdown record and acts; `guest` is undefined when the guest is not on this
   * node; `signalledByAgent`: the record is the ending run's, whose vzdump this agent sent TERM.
   */
  async settle(s: VzdumpShutdown, guest: GuestAtCleanup | undefined, vzdumpRunning: boolean, note: JobNoter, signalledByAgent = false): Promise<RestartOutcome> {
    const { log } = this.deps;
    const fields = { jobId: s.jobId, vmid: s.vmid, vmtype: s.vmtype };
    const now = this.deps.clock.now();
    // The lock went with this agent's knowledge (its TERM ended the vzdump that unlocked it, or this
    // cleanup cleared it): kept, so a later recheck does not take the missing lock for an operator's.
    const released = s.releasedAt === undefined && !vzdumpRunning && (signalledByAgent || (guest?.summary.lock === "backup" && guest.lockCleared));
    if (released) this.deps.shutdowns.recordReleased(s.jobId, now);
    const decision = decideRestart({
      shutdown: released ? { ...s, releasedAt: now } : s,
      vzdumpRunning,
      signalledByAgent,
      now,
      shutdownWatchMs: this.deps.shutdownWatchMs ?? DEFAULT_SHUTDOWN_WATCH_MS,
      guest: guest && { lockBefore: guest.summary.lock, lockCleared: guest.lockCleared, status: vzdumpRunning ? "unknown" : await this.status(s) },
    });
    if (decision.action === "wait") {
      log.info({ ...fields, reason: decision.reason }, "guest shut down by vzdump left for a later cleanup");
      return {};
    }
    if (decision.action === "leave") {
      this.finish(s, `guest ${s.vmid}: vzdump shut it down (stop mode) and did not start it again; the crash cleanup left it as it is: ${decision.reason}`, note);
      log.warn({ ...fields, reason: decision.reason }, "guest shut down by vzdump not started again");
      return {};
    }
    const argv = [tool(s.vmtype), "start", String(s.vmid)];
    const started = await this.run(argv[0]!, argv.slice(1)).catch((err: unknown) => ({
      exitCode: -1,
      stdout: "",
      stderr: err instanceof Error ? err.message : String(err),
    }));
    if (started.exitCode === 0) {
      this.finish(s, `guest ${s.vmid}: started again by the crash cleanup (${argv.join(" ")}): ${decision.reason}`, note);
      log.warn({ ...fields, argv, reason: decision.reason }, "guest shut down by vzdump started again");
      return { done: `started ${s.vmtype === "lxc" ? "CT" : "VM"} ${s.vmid} again (${decision.reason})` };
    }
    const why = lastLine(started.stderr || started.stdout) || `exit code ${started.exitCode}`;
    this.finish(s, `guest ${s.vmid}: the crash cleanup could not start it again (${argv.join(" ")}: ${why}); it stays stopped, start it by hand. ${decision.reason}`, note);
    log.error({ ...fields, argv, exitCode: started.exitCode, err: why, reason: decision.reason }, "guest shut down by vzdump could not be started");
    return { failure: `${argv.join(" ")}: ${why}` };
  }

  /** Settles the record, then tries to put its outcome on the job. */
  private finish(s: VzdumpShutdown, outcome: string, note: JobNoter): void {
    const now = this.deps.clock.now();
    this.deps.shutdowns.settle(s.jobId, outcome, now);
    if (noteSafely(note, s.jobId, outcome, this.deps.log)) this.deps.shutdowns.markNoted(s.jobId, now);
  }
}

/** Puts every settled outcome that is not on its job yet there (the daemon, once the ledger exists). */
export function noteSettledShutdowns(shutdowns: ShutdownRecords, note: JobNoter, clock: Clock, log: Logger): number {
  let noted = 0;
  for (const s of shutdowns.unnoted()) {
    if (!noteSafely(note, s.jobId, s.outcome, log)) continue;
    shutdowns.markNoted(s.jobId, clock.now());
    noted++;
  }
  return noted;
}

function noteSafely(note: JobNoter, jobId: string, message: string, log: Logger): boolean {
  try {
    return note(jobId, message);
  } catch (err) {
    log.warn({ jobId, err: err instanceof Error ? err.message : String(err) }, "crash cleanup note not recorded");
    return false;
  }
}
