// One vzdump backup of one guest, as seen by a job: the hook's phases (over the hook server) and
// vzdump's output lines (from its stdout) turned into EngineHooks calls, in the job's phase order:
//   backup-start            → the ACTUAL mode (vzdump falls back: snapshot → suspend, not running → stop)
//   pre-stop                → hooks.quiesce() (the barrier; a refusal/timeout vetoes: the hook exits 1),
//                             then hooks.snapshotting(mode)
//   LXC pre-restart, mode snapshot, `parent: vzdump` committed → hooks.snapshotted
//   QEMU `started backup task '<uuid>'`, mode snapshot → hooks.snapshotted (no hook marks that point)
//   `creating vzdump archive` (QEMU snapshot: after snapshotted) → hooks.archiving
//   QEMU `NN% (x of y)` lines → progress; LXC: the growing `<basename>.tar.dat`
//   suspend / stop → never snapshotted (stacks resume when the job ends)
//   stop mode: pre-stop → the shutdown is recorded (durably, before the hook lets vzdump shut the
//              guest down); pre-restart / post-restart → vzdump restarts it / has restarted it. A
//              shutdown still open when the job ended is for the crash cleanup (../../pve/cleanup.ts).
//   exit code 0 → archive = TARGET (backup-end) or the `creating vzdump archive` path; else the
//   `ERROR: Backup of VM <id> failed - …` line. Every other output line is kept with the job (notes).
import { stat } from "node:fs/promises";
import { Consistency, SnapshotMode } from "@lull/proto";
import { asLullError, LullError, type Clock, type ErrorCode, type Logger } from "@lull/shared";
import type { EngineHooks, EngineResult } from "../engine.js";
import type { HookMessage, HookReply, VzdumpMode } from "../../hook/hook-protocol.js";
import type { HookSession } from "../../hook/hook-server.js";
import type { GuestType } from "../../pve/guest-config.js";
import type { ProcessExit } from "../../pve/process-launcher.js";
import { classifyLine, partialArchivePath } from "./log.js";

export interface VzdumpRunOptions {
  vmid: number;
  vmtype: GuestType;
  requestedMode: VzdumpMode;
  hooks: EngineHooks;
  log: Logger;
  clock: Clock;
  /** LXC, at pre-restart in snapshot mode: is the `vzdump` snapshot committed (`parent: vzdump`)? */
  snapshotCommitted: () => Promise<boolean>;
  progressIntervalMs: number;
  /** Records the stop-mode shutdown and restart of the guest (./shutdown-store.ts); absent: not recorded. */
  shutdowns?: StopModeRecorder;
}

/** What a run records about a guest vzdump shuts down in stop mode. Synchronous and durable when it returns. */
export interface StopModeRecorder {
  shuttingDown(): void;
  restartBegun(): void;
  restarted(): void;
}

const MODES: Record<VzdumpMode, SnapshotMode> = {
  snapshot: SnapshotMode.SNAPSHOT_MODE_SNAPSHOT,
  suspend: SnapshotMode.SNAPSHOT_MODE_SUSPEND,
  stop: SnapshotMode.SNAPSHOT_MODE_STOP,
};

export class VzdumpRun implements HookSession {
  pid: number | undefined;
  private actualMode: VzdumpMode | undefined;
  private quiesced = false;
  private snapshotting = false;
  private snapshotted = false;
  private archiving = false;
  private pendingArchiving = false;
  private snapshotFailed = false;
  private aborted = false;
  private storageSnapshotAt: number | undefined;
  private preStopDoneAt: number | undefined;
  private archivePath: string | undefined;
  private target: string | undefined;
  private vetoError: LullError | undefined;
  private hookError: LullError | undefined;
  /** `Backup of VM <id> failed - …` lines, then other ERROR lines. */
  private readonly failures: string[] = [];
  private readonly errors: string[] = [];
  private readonly tail: string[] = [];
  private poller: NodeJS.Timeout | undefined;
  private lastPolledBytes = 0;
  private hookEnd: ((ok: boolean) => void) | undefined;
  private readonly ended: Promise<boolean>;

  constructor(private readonly o: VzdumpRunOptions) {
    this.ended = new Promise((resolve) => (this.hookEnd = resolve));
  }

  /** The mode vzdump actually uses (undefined until it said). */
  get mode(): VzdumpMode | undefined {
    return this.actualMode;
  }

  private call(what: string, fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.hookError ??= asLullError(err);
      this.o.log.error({ vmid: this.o.vmid, what, err: this.hookError.message }, "engine hook failed");
    }
  }

  private note(message: string): void {
    try {
      this.o.hooks.note(message);
    } catch (err) {
      const e = asLullError(err);
      if (e.code !== "LULL_E_JOB_TERMINAL") {
        this.hookError ??= e;
        this.o.log.error({ vmid: this.o.vmid, what: "note", err: e.message }, "engine hook failed");
        return;
      }
      // vzdump goes on after its job ended (a veto at pre-stop fails the job first): its lines go to the log.
      this.o.log.info({ vmid: this.o.vmid, line: message }, "vzdump output after the job ended");
    }
  }

  private modeEnum(): SnapshotMode {
    return MODES[this.actualMode ?? this.o.requestedMode];
  }

  private enterSnapshotting(): void {
    if (this.snapshotting) return;
    this.snapshotting = true;
    if (!this.quiesced) {
      // No pre-stop came: vzdump backs up a guest that is not running (backup-start, backup-end, log-end).
      const reason = `guest ${this.o.vmid} is not running (vzdump ${this.actualMode ?? this.o.requestedMode} mode, no pre-stop)`;
      const hooks = this.o.hooks;
      if (hooks.skipQuiesce) this.call("skipQuiesce", () => hooks.skipQuiesce!(reason));
      else this.note(`${reason}: nothing to quiesce`);
    }
    this.call("snapshotting", () => this.o.hooks.snapshotting(this.modeEnum()));
  }

  private markSnapshotted(at: number): void {
    if (this.snapshotted) return;
    this.enterSnapshotting();
    this.snapshotted = true;
    this.call("snapshotted", () => this.o.hooks.snapshotted({ mode: SnapshotMode.SNAPSHOT_MODE_SNAPSHOT, snapshotAt: at }));
    if (this.pendingArchiving) this.enterArchiving();
  }

  private enterArchiving(): void {
    if (this.archiving) return;
    this.enterSnapshotting();
    this.archiving = true;
    this.pendingArchiving = false;
    this.call("archiving", () => this.o.hooks.archiving({ mode: this.modeEnum(), bytesTotal: 0 }));
    if (this.o.vmtype === "lxc") this.startPolling();
  }

  private startPolling(): void {
    const dat = this.archivePath ? partialArchivePath(this.archivePath) : undefined;
    if (!dat || this.poller) return;
    this.poller = setInterval(() => {
      stat(dat).then(
        (st) => {
          if (st.size > this.lastPolledBytes) {
            this.lastPolledBytes = st.size;
            this.call("progress", () => this.o.hooks.progress(st.size, 0));
          }
        },
        () => undefined,
      );
    }, this.o.progressIntervalMs);
    this.poller.unref();
  }

  stop(): void {
    if (this.poller) clearInterval(this.poller);
    this.poller = undefined;
  }

  async handle(message: HookMessage): Promise<HookReply> {
    const { vmid } = this.o;
    switch (message.phase) {
      case "backup-start": {
        this.actualMode = message.mode;
        this.target = message.env.TARGET ?? this.target;
        if (message.mode !== this.o.requestedMode) {
          const why = message.mode === "snapshot" ? "" : ": no snapshotted, the stacks resume when the job ends";
          this.note(`vzdump backs up guest ${vmid} in ${message.mode} mode (asked for ${this.o.requestedMode})${why}`);
        }
        return { ok: true };
      }
      case "pre-stop": {
        this.actualMode ??= message.mode;
        try {
          const consistency = await this.o.hooks.quiesce();
          this.quiesced = true;
          if (consistency === Consistency.CONSISTENCY_CRASH) this.note(`guest ${vmid}: going on crash-consistent (quiesce policy)`);
        } catch (err) {
          this.vetoError = asLullError(err);
          return { ok: false, reason: this.vetoError.message };
        }
        // A pre-stop only comes for a running guest; in stop mode vzdump shuts it down once we answer.
        if (message.mode === "stop" && !this.recordShutdown()) return { ok: false, reason: this.vetoError!.message };
        this.enterSnapshotting();
        this.preStopDoneAt = this.o.clock.now();
        return { ok: true, message: `stacks of guest ${vmid} quiesced; vzdump goes on in ${message.mode} mode` };
      }
      case "pre-restart": {
        if (message.mode === "stop") this.record("restartBegun");
        if (this.o.vmtype === "lxc" && message.mode === "snapshot" && !this.snapshotted) await this.confirmLxcSnapshot();
        return { ok: true };
      }
      case "post-restart":
        if (message.mode === "stop") this.record("restarted");
        return { ok: true };
      case "backup-end":
        this.target = message.env.TARGET ?? this.target;
        return { ok: true };
      case "backup-abort":
        this.aborted = true;
        this.note(`vzdump aborted the backup of guest ${vmid}`);
        return { ok: true };
      case "log-end":
        if (message.env.LOGFILE) this.note(`vzdump log: ${message.env.LOGFILE}`);
        this.hookEnd?.(!this.aborted);
        return { ok: true };
      default:
        return { ok: true };
    }
  }

  /** Durable intent before the shutdown; when it cannot be written the guest is not shut down (veto). */
  private recordShutdown(): boolean {
    try {
      this.o.shutdowns?.shuttingDown();
      return true;
    } catch (err) {
      const why = err instanceof Error ? err.message : String(err);
      this.vetoError = new LullError("LULL_E_INTERNAL", `guest ${this.o.vmid}: the stop-mode shutdown could not be recorded (${why}); vetoed, so vzdump does not shut it down`);
      this.o.log.error({ vmid: this.o.vmid, err: why }, "stop-mode shutdown not recorded");
      return false;
    }
  }

  /** Restart records never fail the phase (the hook never fails pre-/post-restart): a failure is logged. */
  private record(what: "restartBegun" | "restarted"): void {
    try {
      this.o.shutdowns?.[what]();
    } catch (err) {
      this.o.log.error({ vmid: this.o.vmid, what, err: err instanceof Error ? err.message : String(err) }, "stop-mode restart not recorded");
    }
  }

  private async confirmLxcSnapshot(): Promise<void> {
    if (this.snapshotFailed) return;
    let committed = false;
    try {
      committed = await this.o.snapshotCommitted();
    } catch (err) {
      this.note(`could not check guest ${this.o.vmid}'s vzdump snapshot: ${err instanceof Error ? err.message : String(err)}`);
    }
    if (!committed) {
      this.note(`pre-restart of guest ${this.o.vmid} without a committed vzdump snapshot: not marking snapshotted`);
      return;
    }
    this.markSnapshotted(this.storageSnapshotAt ?? this.preStopDoneAt ?? this.o.clock.now());
  }

  onLine(line: string): void {
    this.tail.push(line);
    if (this.tail.length > 200) this.tail.shift();
    const c = classifyLine(line);
    if (c.kind !== "progress") this.note(`vzdump: ${line}`);
    switch (c.kind) {
      case "mode":
        if (c.mode === "snapshot" || c.mode === "suspend" || c.mode === "stop") this.actualMode = c.mode;
        break;
      case "storage-snapshot":
        this.storageSnapshotAt = this.o.clock.now();
        break;
      case "snapshot-create-failed":
        this.snapshotFailed = true;
        break;
      case "archive":
        this.archivePath = c.path;
        if (this.actualMode === "snapshot" && this.o.vmtype === "qemu" && !this.snapshotted) this.pendingArchiving = true;
        else this.enterArchiving();
        break;
      case "job-started":
        if (this.o.vmtype === "qemu" && this.actualMode === "snapshot") this.markSnapshotted(this.o.clock.now());
        else if (this.pendingArchiving) this.enterArchiving();
        break;
      case "progress":
        if (!this.archiving) this.enterArchiving();
        this.call("progress", () => this.o.hooks.progress(c.doneBytes, c.totalBytes));
        break;
      case "freeze-skipped":
        this.note(`guest ${this.o.vmid}: the guest agent's filesystem freeze was skipped; data inside the VM is crash-consistent unless its apps were stopped`);
        break;
      case "freeze-failed":
        this.note(`guest ${this.o.vmid}: the guest agent's filesystem freeze failed (${c.message}); crash-consistent unless its apps were stopped`);
        break;
      case "guest-failed":
        this.failures.push(line.slice("ERROR: ".length));
        break;
      case "job-failed":
      case "error":
        this.errors.push(line.slice("ERROR: ".length));
        break;
      default:
        break;
    }
  }

  /** Settles a run this agent started, from vzdump's exit. Throws a LullError on failure. */
  async outcome(exit: ProcessExit, signal: AbortSignal): Promise<EngineResult> {
    this.stop();
    const { vmid } = this.o;
    if (signal.aborted || exit.cancelled) {
      throw new LullError("LULL_E_CANCELLED", `backup of guest ${vmid} cancelled; vzdump ${describeExit(exit)}`);
    }
    if (this.vetoError) throw this.vetoError;
    if (this.hookError) throw this.hookError;
    if (exit.startError !== undefined) throw new LullError("LULL_E_COMMAND_FAILED", `vzdump could not start: ${exit.startError}`);
    if (exit.timedOut) throw new LullError("LULL_E_COMMAND_FAILED", `vzdump of guest ${vmid} timed out; it was stopped`);
    if (exit.exitCode === 0) return this.result();
    const message = this.failures.at(0) ?? this.errors.at(0) ?? this.tail.at(-1) ?? `vzdump ${describeExit(exit)}`;
    throw new LullError(this.failureCode(message), `vzdump: ${message}`);
  }

  /** For backups Proxmox started (no vzdump output here): settles at `log-end`. */
  async hookOutcome(): Promise<EngineResult> {
    const ok = await this.ended;
    this.stop();
    if (this.vetoError) throw this.vetoError;
    if (!ok) throw new LullError("LULL_E_ARCHIVE_FAILED", `vzdump aborted the backup of guest ${this.o.vmid} (see its task log)`);
    return this.result();
  }

  private async result(): Promise<EngineResult> {
    const path = this.target ?? this.archivePath;
    if (path === undefined) {
      throw new LullError("LULL_E_UNKNOWN_GUEST", `vzdump exited without backing up guest ${this.o.vmid} (is it on this node?)`);
    }
    const size = await stat(path).then(
      (st) => st.size,
      () => undefined,
    );
    if (size === undefined) throw new LullError("LULL_E_ARCHIVE_FAILED", `vzdump reported success but ${path} does not exist`);
    this.enterArchiving();
    this.call("progress", () => this.o.hooks.progress(size, size));
    return { archivePath: path, archiveBytes: size };
  }

  private failureCode(message: string): ErrorCode {
    if (/No space left on device|Disk quota exceeded/i.test(message)) return "LULL_E_NO_SPACE";
    if (/is locked \(|can't acquire lock/.test(message)) return "LULL_E_GUEST_BUSY";
    if (this.archiving || this.snapshotted) return "LULL_E_ARCHIVE_FAILED";
    if (this.snapshotting && this.actualMode === "snapshot") return "LULL_E_SNAPSHOT_FAILED";
    return "LULL_E_COMMAND_FAILED";
  }
}

function describeExit(exit: ProcessExit): string {
  if (exit.signal !== undefined) return `was killed by ${exit.signal}`;
  return `exited with code ${exit.exitCode ?? "?"}`;
}
