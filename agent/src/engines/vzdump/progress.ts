// vzdump's progress for one guest, as a pure reducer: (state, input, context) → { state, actions }.
// Inputs are the hook's messages, vzdump's output lines and the answers of the run's async steps;
// the run (./run.ts) performs the actions (EngineHooks calls, notes, stop-mode records, the async
// steps). Stages, in the job's phase order:
//
//   waiting ──pre-stop-done──────────────────────────▶ snapshotting
//      │  (a backup-start/end without pre-stop: the guest is not running → skip-quiesce first)
//      ├──────────────── archive line, progress line, archive written ─────────────┐
//      ▼                                                                            ▼
//   snapshotting ──snapshotted (QEMU `started backup task`, LXC pre-restart ──▶ snapshotted ──▶ archiving
//                   with `parent: vzdump` committed; snapshot mode only)
//
//   - Every stage entered passes through the earlier ones (snapshotting before archiving).
//   - QEMU in snapshot mode: the `creating vzdump archive` line comes before `started backup task`;
//     archiving waits for snapshotted (archivePath set, stage not archiving = an archive pending).
//   - suspend / stop mode: never snapshotted (the stacks resume when the job ends).
//   - A snapshot confirmed after archiving began is not reported (the job is past it).
//   - stop mode: pre-stop records the shutdown (the run, before it answers), pre-restart and
//     post-restart are recorded (`record` actions).
//   - A PBS target (`creating Proxmox Backup Server archive '<snapshot>'`): TARGET is the snapshot
//     id, nothing grows here; progress is proxmox-backup-client's `had to backup … of Y` (LXC) or
//     the percentage lines (QEMU), and their sizes are the backup's size.
//   - Outcome: the archive is TARGET (backup-end) or the `creating vzdump archive` path; a failure
//     is the first `Backup of VM … failed` line, else the first ERROR line, else the last line.
import { Consistency, SnapshotMode } from "@lull/proto";
import type { ErrorCode } from "@lull/shared";
import type { HookMessage, VzdumpMode } from "../../hook/hook-protocol.js";
import type { GuestType } from "../../pve/guest-config.js";
import { classifyLine, partialArchivePath } from "./log.js";

export type Stage = "waiting" | "snapshotting" | "snapshotted" | "archiving";

/** What does not change during a run. */
export interface ProgressContext {
  vmid: number;
  vmtype: GuestType;
  requestedMode: VzdumpMode;
}

export interface ProgressState {
  readonly stage: Stage;
  /** The mode vzdump actually uses (undefined until it said). */
  readonly mode: VzdumpMode | undefined;
  /** pre-stop's quiesce answered (the guest was running). */
  readonly quiesced: boolean;
  /** `snapshot create failed`: the LXC snapshot is not checked at pre-restart. */
  readonly snapshotFailed: boolean;
  /** backup-abort came: log-end ends the run as failed. */
  readonly aborted: boolean;
  readonly storageSnapshotAt: number | undefined;
  readonly preStopDoneAt: number | undefined;
  /** From the `creating vzdump archive '<path>'` line. */
  readonly archivePath: string | undefined;
  /** TARGET of backup-start / backup-end. */
  readonly target: string | undefined;
  /** A PBS target: the snapshot id of the `creating Proxmox Backup Server archive` line. */
  readonly pbsSnapshot: string | undefined;
  /** PBS: the data size the client reported (sum of `had to backup … of Y`, or QEMU's progress total). */
  readonly pbsBytes: number;
  /** Largest size of the growing LXC archive reported so far. */
  readonly partialBytes: number;
  /** `Backup of VM <id> failed - …` lines. */
  readonly failures: readonly string[];
  /** Other ERROR lines. */
  readonly errors: readonly string[];
  /** The last TAIL_LINES output lines. */
  readonly tail: readonly string[];
}

export type ProgressInput =
  | { type: "hook"; message: HookMessage }
  /** pre-stop's quiesce answered. */
  | { type: "quiesced"; consistency: Consistency }
  /** pre-stop is answered `ok` (after the stop-mode shutdown was recorded). */
  | { type: "pre-stop-done"; at: number }
  /** The LXC snapshot check (after a check-lxc-snapshot action); error: the check itself failed. */
  | { type: "lxc-snapshot"; committed: boolean; error?: string; at: number }
  | { type: "line"; line: string; at: number }
  /** The growing LXC archive's size. */
  | { type: "partial-size"; bytes: number }
  /** vzdump succeeded and the archive has this size. */
  | { type: "archive-written"; bytes: number };

export type ProgressAction =
  | { type: "note"; message: string }
  | { type: "skip-quiesce"; reason: string }
  | { type: "snapshotting"; mode: SnapshotMode }
  | { type: "snapshotted"; at: number }
  | { type: "archiving"; mode: SnapshotMode }
  | { type: "progress"; done: number; total: number }
  /** Watch this file grow (LXC: vzdump's partial archive, `partialArchivePath`) and feed partial-size inputs. */
  | { type: "watch-partial"; path: string }
  /** pre-stop: quiesce, then (stop mode) record the shutdown, then answer with pre-stop-done. */
  | { type: "quiesce" }
  | { type: "record"; what: "restartBegun" | "restarted" | "stopReturned" }
  /** pre-restart (LXC, snapshot mode): is the `vzdump` snapshot committed? Answer with lxc-snapshot. */
  | { type: "check-lxc-snapshot" }
  /** log-end: the run Proxmox started has ended (ok: not aborted). */
  | { type: "end"; ok: boolean };

export interface ProgressStep {
  state: ProgressState;
  actions: ProgressAction[];
}

export const TAIL_LINES = 200;

export function initialProgress(): ProgressState {
  return {
    stage: "waiting",
    mode: undefined,
    quiesced: false,
    snapshotFailed: false,
    aborted: false,
    storageSnapshotAt: undefined,
    preStopDoneAt: undefined,
    archivePath: undefined,
    target: undefined,
    pbsSnapshot: undefined,
    pbsBytes: 0,
    partialBytes: 0,
    failures: [],
    errors: [],
    tail: [],
  };
}

const MODES: Record<VzdumpMode, SnapshotMode> = {
  snapshot: SnapshotMode.SNAPSHOT_MODE_SNAPSHOT,
  suspend: SnapshotMode.SNAPSHOT_MODE_SUSPEND,
  stop: SnapshotMode.SNAPSHOT_MODE_STOP,
};

const ORDER: Record<Stage, number> = { waiting: 0, snapshotting: 1, snapshotted: 2, archiving: 3 };

/** Has the run reached `stage` (or gone past it)? */
export function reached(state: ProgressState, stage: Stage): boolean {
  return ORDER[state.stage] >= ORDER[stage];
}

/** The archive line came, archiving waits for snapshotted (QEMU in snapshot mode). */
export function archivePending(state: ProgressState): boolean {
  return state.archivePath !== undefined && state.stage !== "archiving";
}

/** A step under construction: the reducer's helpers add to `actions` and replace `state`. */
class Step {
  readonly actions: ProgressAction[] = [];
  constructor(
    public state: ProgressState,
    private readonly ctx: ProgressContext,
  ) {}

  set(patch: Partial<ProgressState>): void {
    this.state = { ...this.state, ...patch };
  }

  do(action: ProgressAction): void {
    this.actions.push(action);
  }

  note(message: string): void {
    this.do({ type: "note", message });
  }

  private mode(): SnapshotMode {
    return MODES[this.state.mode ?? this.ctx.requestedMode];
  }

  enterSnapshotting(): void {
    if (reached(this.state, "snapshotting")) return;
    if (!this.state.quiesced) {
      // No pre-stop came: vzdump backs up a guest that is not running (backup-start, backup-end, log-end).
      this.do({ type: "skip-quiesce", reason: `guest ${this.ctx.vmid} is not running (vzdump ${this.state.mode ?? this.ctx.requestedMode} mode, no pre-stop)` });
    }
    this.set({ stage: "snapshotting" });
    this.do({ type: "snapshotting", mode: this.mode() });
  }

  markSnapshotted(at: number): void {
    if (reached(this.state, "snapshotted")) return;
    this.enterSnapshotting();
    const pending = archivePending(this.state);
    this.set({ stage: "snapshotted" });
    this.do({ type: "snapshotted", at });
    if (pending) this.enterArchiving();
  }

  enterArchiving(): void {
    if (this.state.stage === "archiving") return;
    this.enterSnapshotting();
    this.set({ stage: "archiving" });
    this.do({ type: "archiving", mode: this.mode() });
    const dat = this.ctx.vmtype === "lxc" && this.state.archivePath && this.state.pbsSnapshot === undefined ? partialArchivePath(this.state.archivePath) : undefined;
    if (dat !== undefined) this.do({ type: "watch-partial", path: dat });
  }
}

export function progress(state: ProgressState, input: ProgressInput, ctx: ProgressContext): ProgressStep {
  const step = new Step(state, ctx);
  switch (input.type) {
    case "hook":
      onHook(step, input.message, ctx);
      break;
    case "quiesced":
      step.set({ quiesced: true });
      if (input.consistency === Consistency.CONSISTENCY_CRASH) step.note(`guest ${ctx.vmid}: going on crash-consistent (quiesce policy)`);
      break;
    case "pre-stop-done":
      step.enterSnapshotting();
      step.set({ preStopDoneAt: input.at });
      break;
    case "lxc-snapshot":
      if (input.error !== undefined) step.note(`could not check guest ${ctx.vmid}'s vzdump snapshot: ${input.error}`);
      if (!input.committed) step.note(`pre-restart of guest ${ctx.vmid} without a committed vzdump snapshot: not marking snapshotted`);
      else step.markSnapshotted(step.state.storageSnapshotAt ?? step.state.preStopDoneAt ?? input.at);
      break;
    case "line":
      onLine(step, input.line, input.at, ctx);
      break;
    case "partial-size":
      if (input.bytes > step.state.partialBytes) {
        step.set({ partialBytes: input.bytes });
        step.do({ type: "progress", done: input.bytes, total: 0 });
      }
      break;
    case "archive-written":
      step.enterArchiving();
      step.do({ type: "progress", done: input.bytes, total: input.bytes });
      break;
  }
  return { state: step.state, actions: step.actions };
}

function onHook(step: Step, message: HookMessage, ctx: ProgressContext): void {
  const { vmid } = ctx;
  switch (message.phase) {
    case "backup-start":
      step.set({ mode: message.mode, target: message.env.TARGET ?? step.state.target });
      if (message.mode !== ctx.requestedMode) {
        const why = message.mode === "snapshot" ? "" : ": no snapshotted, the stacks resume when the job ends";
        step.note(`vzdump backs up guest ${vmid} in ${message.mode} mode (asked for ${ctx.requestedMode})${why}`);
      }
      return;
    case "pre-stop":
      step.set({ mode: step.state.mode ?? message.mode });
      step.do({ type: "quiesce" });
      return;
    case "pre-restart":
      if (message.mode === "stop") step.do({ type: "record", what: "restartBegun" });
      if (ctx.vmtype === "lxc" && message.mode === "snapshot" && !reached(step.state, "snapshotted") && !step.state.snapshotFailed) {
        step.do({ type: "check-lxc-snapshot" });
      }
      return;
    case "post-restart":
      if (message.mode === "stop") step.do({ type: "record", what: "restarted" });
      return;
    case "backup-end":
      step.set({ target: message.env.TARGET ?? step.state.target });
      return;
    case "backup-abort":
      step.set({ aborted: true });
      step.note(`vzdump aborted the backup of guest ${vmid}`);
      return;
    case "log-end":
      if (message.env.LOGFILE) step.note(`vzdump log: ${message.env.LOGFILE}`);
      step.do({ type: "end", ok: !step.state.aborted });
      return;
    default:
      return;
  }
}

function onLine(step: Step, line: string, at: number, ctx: ProgressContext): void {
  const { vmid, vmtype } = ctx;
  step.set({ tail: [...step.state.tail, line].slice(-TAIL_LINES) });
  const c = classifyLine(line);
  if (c.kind !== "progress") step.note(`vzdump: ${line}`);
  switch (c.kind) {
    case "mode":
      if (c.mode === "snapshot" || c.mode === "suspend" || c.mode === "stop") step.set({ mode: c.mode });
      break;
    case "storage-snapshot":
      step.set({ storageSnapshotAt: at });
      break;
    case "snapshot-create-failed":
      step.set({ snapshotFailed: true });
      break;
    case "archive": {
      const waitsForSnapshot = step.state.mode === "snapshot" && vmtype === "qemu" && !reached(step.state, "snapshotted");
      step.set({ archivePath: c.path });
      if (!waitsForSnapshot) step.enterArchiving();
      // VZDump.pm logs this line only after stop_vm returned (and set its restart flag).
      if (step.state.mode === "stop") step.do({ type: "record", what: "stopReturned" });
      break;
    }
    case "pbs-archive": {
      // Like the file archive line, but nothing grows on this node: progress comes from the lines.
      const waitsForSnapshot = step.state.mode === "snapshot" && vmtype === "qemu" && !reached(step.state, "snapshotted");
      step.set({ archivePath: c.snapshot, pbsSnapshot: c.snapshot });
      if (!waitsForSnapshot) step.enterArchiving();
      if (step.state.mode === "stop") step.do({ type: "record", what: "stopReturned" });
      break;
    }
    case "pbs-uploaded": {
      const bytes = step.state.pbsBytes + c.bytes;
      step.set({ pbsBytes: bytes });
      step.enterArchiving();
      step.do({ type: "progress", done: bytes, total: 0 });
      break;
    }
    case "job-started":
      if (vmtype === "qemu" && step.state.mode === "snapshot") step.markSnapshotted(at);
      else if (archivePending(step.state)) step.enterArchiving();
      break;
    case "progress":
      step.enterArchiving();
      if (step.state.pbsSnapshot !== undefined) step.set({ pbsBytes: c.totalBytes });
      step.do({ type: "progress", done: c.doneBytes, total: c.totalBytes });
      break;
    case "freeze-skipped":
      step.note(`guest ${vmid}: the guest agent's filesystem freeze was skipped; data inside the VM is crash-consistent unless its apps were stopped (vzdump: ${c.reason})`);
      break;
    case "freeze-failed":
      step.note(`guest ${vmid}: the guest agent's filesystem freeze failed (${c.message}); crash-consistent unless its apps were stopped`);
      break;
    case "guest-failed":
      step.set({ failures: [...step.state.failures, line.slice("ERROR: ".length)] });
      break;
    case "job-failed":
    case "error":
      step.set({ errors: [...step.state.errors, line.slice("ERROR: ".length)] });
      break;
    default:
      break;
  }
}

/** The archive vzdump reports: TARGET, else the `creating vzdump archive` path. */
export function archiveOf(state: ProgressState): string | undefined {
  return state.target ?? state.archivePath;
}

/** Why a vzdump that exited non-zero failed: the first guest failure, else the first ERROR, else the last line. */
export function failureLine(state: ProgressState): string | undefined {
  return state.failures.at(0) ?? state.errors.at(0) ?? state.tail.at(-1);
}

/** The error code of a failed vzdump, from its message and how far the run got. */
export function failureCode(state: ProgressState, message: string): ErrorCode {
  if (/No space left on device|Disk quota exceeded/i.test(message)) return "LULL_E_NO_SPACE";
  if (/is locked \(|can't acquire lock/.test(message)) return "LULL_E_GUEST_BUSY";
  if (reached(state, "snapshotted")) return "LULL_E_ARCHIVE_FAILED";
  if (state.stage === "snapshotting" && state.mode === "snapshot") return "LULL_E_SNAPSHOT_FAILED";
  return "LULL_E_COMMAND_FAILED";
}
