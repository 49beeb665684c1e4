// One vzdump backup of one guest, as seen by a job: the hook's phases (over the hook server) and
// vzdump's output lines (from its stdout) go through the progress reducer (./progress.ts: its
// header has the stages), and this run performs what it asks for: EngineHooks calls, notes, the
// stop-mode records, and its async steps:
//   pre-stop                → hooks.quiesce() (the barrier; a refusal/timeout vetoes: the hook exits 1),
//                             in stop mode the shutdown is recorded (durably, before the hook lets
//                             vzdump shut the guest down), then snapshotting
//   LXC pre-restart, mode snapshot → is `parent: vzdump` committed? (then snapshotted)
//   LXC archiving           → the growing partial (`….tar.dat` compressed, `<basename>.dat` uncompressed) is polled for progress
//   log-end                 → the end of a run Proxmox started (hookOutcome)
// In a consistency group (groupRunId): pre-stop vetoes any mode but snapshot (suspend and stop mode
// have no point the group can share), and `snapshotted` returns the group's point: the archiving
// and progress calls after it wait until that promise settled (vzdump itself archives on meanwhile).
// A shutdown still open when the job ended is for the crash cleanup (../../pve/cleanup.ts).
// exit code 0 → the archive (TARGET or the `creating vzdump archive` path) must exist, or for a
// PBS target (`creating Proxmox Backup Server archive`) TARGET is the snapshot id; else the
// failure line and code come from the reducer's state.
import { stat } from "node:fs/promises";
import { SnapshotMode } from "@lull/proto";
import { asLullError, LullError, type Clock, type Logger } from "@lull/shared";
import type { EngineHooks, EngineResult } from "../engine.js";
import type { HookMessage, HookReply, VzdumpMode } from "../../hook/hook-protocol.js";
import type { HookSession } from "../../hook/hook-server.js";
import type { GuestType } from "../../pve/guest-config.js";
import type { ProcessExit } from "@lull/shared";
import {
  archiveOf,
  failureCode,
  failureLine,
  initialProgress,
  progress,
  type ProgressAction,
  type ProgressContext,
  type ProgressInput,
  type ProgressState,
} from "./progress.js";

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
  /** The consistency group run the job is a member of. */
  groupRunId?: string;
}

/** What a run records about a guest vzdump shuts down in stop mode. Synchronous and durable when it returns. */
export interface StopModeRecorder {
  shuttingDown(): void;
  restartBegun(): void;
  restarted(): void;
  /** The archive line after the shutdown: stop_vm returned (the guest is down, vzdump will restart it). */
  stopReturned(): void;
}

export class VzdumpRun implements HookSession {
  pid: number | undefined;
  private state: ProgressState = initialProgress();
  private readonly ctx: ProgressContext;
  private vetoError: LullError | undefined;
  private hookError: LullError | undefined;
  private poller: NodeJS.Timeout | undefined;
  private hookEnd: ((ok: boolean) => void) | undefined;
  private readonly ended: Promise<boolean>;
  /** A group member's `snapshotted`: the group's point (archiving and progress wait for it). */
  private point: Promise<void> | undefined;

  constructor(private readonly o: VzdumpRunOptions) {
    this.ctx = { vmid: o.vmid, vmtype: o.vmtype, requestedMode: o.requestedMode };
    this.ended = new Promise((resolve) => (this.hookEnd = resolve));
  }

  /** The mode vzdump actually uses (undefined until it said). */
  get mode(): VzdumpMode | undefined {
    return this.state.mode;
  }

  /** Feeds the reducer and performs its actions; the async steps it asks for are returned, in order. */
  private dispatch(input: ProgressInput): ProgressAction[] {
    const step = progress(this.state, input, this.ctx);
    this.state = step.state;
    const later: ProgressAction[] = [];
    for (const action of step.actions) {
      if (!this.perform(action)) later.push(action);
    }
    return later;
  }

  /** Performs a synchronous action; false for the async steps (quiesce, check-lxc-snapshot) and `end`. */
  private perform(action: ProgressAction): boolean {
    const hooks = this.o.hooks;
    switch (action.type) {
      case "note":
        this.note(action.message);
        return true;
      case "skip-quiesce":
        if (hooks.skipQuiesce) this.call("skipQuiesce", () => hooks.skipQuiesce!(action.reason));
        else this.note(`${action.reason}: nothing to quiesce`);
        return true;
      case "snapshotting":
        this.call("snapshotting", () => hooks.snapshotting(action.mode));
        return true;
      case "snapshotted":
        this.call("snapshotted", () => {
          const held = hooks.snapshotted({ mode: SnapshotMode.SNAPSHOT_MODE_SNAPSHOT, snapshotAt: action.at });
          if (held instanceof Promise) {
            // The group's point: the job fails through its signal when the group fails before it.
            this.point = held.catch((err: unknown) => {
              this.o.log.warn({ vmid: this.o.vmid, err: asLullError(err).message }, "the group's snapshot point did not come");
              throw err;
            });
            this.point.catch(() => undefined);
          }
        });
        return true;
      case "archiving":
        this.afterPoint("archiving", () => hooks.archiving({ mode: action.mode, bytesTotal: 0 }));
        return true;
      case "progress":
        this.afterPoint("progress", () => hooks.progress(action.done, action.total));
        return true;
      case "watch-partial":
        this.watch(action.path);
        return true;
      case "record":
        this.record(action.what);
        return true;
      default:
        return false;
    }
  }

  /** Runs a hook call now, or — a group member past its copy — once the group's point came (never if it did not). */
  private afterPoint(what: string, fn: () => void): void {
    if (!this.point) return this.call(what, fn);
    this.point.then(
      () => this.call(what, fn),
      () => undefined,
    );
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

  /** LXC: the growing partial archive (`partialArchivePath`) is the progress. */
  private watch(dat: string): void {
    if (this.poller) return;
    this.poller = setInterval(() => {
      stat(dat).then(
        (st) => void this.dispatch({ type: "partial-size", bytes: st.size }),
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
    for (const action of this.dispatch({ type: "hook", message })) {
      if (action.type === "quiesce") return this.preStop(message);
      if (action.type === "check-lxc-snapshot") await this.confirmLxcSnapshot();
      if (action.type === "end") this.hookEnd?.(action.ok);
    }
    // A group member whose hook call failed (it cannot skip the group's barrier: a stopped guest) stops vzdump now, not at its end.
    if (this.o.groupRunId !== undefined && this.hookError && !this.vetoError) {
      this.vetoError = this.hookError;
      return { ok: false, reason: this.hookError.message };
    }
    return { ok: true };
  }

  /** pre-stop: the barrier. A refusal/timeout vetoes (the hook exits 1); in stop mode the shutdown is recorded first. */
  private async preStop(message: HookMessage): Promise<HookReply> {
    if (this.o.groupRunId !== undefined && message.mode !== "snapshot") {
      this.vetoError = new LullError(
        "LULL_E_GROUP_UNSUPPORTED",
        `guest ${this.o.vmid}: vzdump backs it up in ${message.mode} mode (asked: ${this.o.requestedMode}), which has no snapshot point group run ${this.o.groupRunId} can share (the guest is held for its whole backup); a vzdump member needs snapshot mode: a running guest on storage with snapshots`,
      );
      return { ok: false, reason: this.vetoError.message };
    }
    try {
      const consistency = await this.o.hooks.quiesce();
      this.dispatch({ type: "quiesced", consistency });
    } catch (err) {
      this.vetoError = asLullError(err);
      return { ok: false, reason: this.vetoError.message };
    }
    // A pre-stop only comes for a running guest; in stop mode vzdump shuts it down once we answer.
    if (message.mode === "stop" && !this.recordShutdown()) return { ok: false, reason: this.vetoError!.message };
    this.dispatch({ type: "pre-stop-done", at: this.o.clock.now() });
    return { ok: true, message: `stacks of guest ${this.o.vmid} quiesced; vzdump goes on in ${message.mode} mode` };
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
  private record(what: "restartBegun" | "restarted" | "stopReturned"): void {
    try {
      this.o.shutdowns?.[what]();
    } catch (err) {
      this.o.log.error({ vmid: this.o.vmid, what, err: err instanceof Error ? err.message : String(err) }, "stop-mode restart not recorded");
    }
  }

  private async confirmLxcSnapshot(): Promise<void> {
    let committed = false;
    let error: string | undefined;
    try {
      committed = await this.o.snapshotCommitted();
    } catch (err) {
      error = err instanceof Error ? err.message : String(err);
    }
    this.dispatch({ type: "lxc-snapshot", committed, at: this.o.clock.now(), ...(error !== undefined ? { error } : {}) });
  }

  onLine(line: string): void {
    this.dispatch({ type: "line", line, at: this.o.clock.now() });
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
    if (exit.exitCode === 0) {
      // A group member whose vzdump finished before the group's point: the job is done only after it (stacks resume there).
      await this.point;
      return this.result();
    }
    const message = failureLine(this.state) ?? `vzdump ${describeExit(exit)}`;
    throw new LullError(failureCode(this.state, message), `vzdump: ${message}`);
  }

  /** For backups Proxmox started (no vzdump output here): settles at `log-end`. */
  async hookOutcome(): Promise<EngineResult> {
    const ok = await this.ended;
    this.stop();
    if (this.vetoError) throw this.vetoError;
    if (!ok) throw new LullError("LULL_E_ARCHIVE_FAILED", `vzdump aborted the backup of guest ${this.o.vmid} (see its task log)`);
    await this.point;
    return this.result();
  }

  private async result(): Promise<EngineResult> {
    const path = archiveOf(this.state);
    if (path === undefined) {
      throw new LullError("LULL_E_UNKNOWN_GUEST", `vzdump exited without backing up guest ${this.o.vmid} (is it on this node?)`);
    }
    // A run Proxmox started has no output lines here: its TARGET alone says PBS (never a file path, which is absolute).
    if (this.state.pbsSnapshot !== undefined || PBS_SNAPSHOT.test(path)) return this.pbsResult(path);
    const size = await stat(path).then(
      (st) => st.size,
      () => undefined,
    );
    if (size === undefined) throw new LullError("LULL_E_ARCHIVE_FAILED", `vzdump reported success but ${path} does not exist`);
    this.dispatch({ type: "archive-written", bytes: size });
    return { archivePath: path, archiveBytes: size };
  }

  /** A PBS target: the snapshot lives on the backup server; its id is the location, its size the client's figures. */
  private pbsResult(snapshot: string): EngineResult {
    const kind = this.o.vmtype === "lxc" ? "ct" : "vm";
    if (!PBS_SNAPSHOT.test(snapshot) || !snapshot.startsWith(`${kind}/${this.o.vmid}/`)) {
      throw new LullError("LULL_E_ARCHIVE_FAILED", `vzdump reported success to a Proxmox Backup Server but named the snapshot '${snapshot}', not ${kind}/${this.o.vmid}/<time>`);
    }
    const bytes = this.state.pbsBytes;
    this.note(`vzdump stored guest ${this.o.vmid} on a Proxmox Backup Server as snapshot ${snapshot}${bytes > 0 ? "" : " (the client reported no size)"}`);
    this.dispatch({ type: "archive-written", bytes });
    return { archivePath: snapshot, archiveBytes: bytes };
  }
}

/** A PBS snapshot id as vzdump names it (exec_backup_task: `ct|vm/<vmid>/<%FT%TZ>`). */
const PBS_SNAPSHOT = /^(ct|vm)\/\d+\/\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/;

function describeExit(exit: ProcessExit): string {
  if (exit.signal !== undefined) return `was killed by ${exit.signal}`;
  return `exited with code ${exit.exitCode ?? "?"}`;
}
