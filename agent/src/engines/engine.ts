// Port: a backup engine makes one backup of one guest. It reports progress through
// EngineHooks; each hook call persists the job's new phase and emits its event
// *before* it returns, so the engine's next side effect always follows durable intent.
import type { Consistency, SnapshotMode } from "@lull/proto";
import type { Logger } from "@lull/shared";
import type { GuestConfig } from "../config.js";

export interface EngineHooks {
  /**
   * Enters `quiescing` and waits for the barrier: every registered stack of the guest
   * acknowledges (APP), or refuses / times out. Under the `fail` policy a refusal or a
   * timeout throws LullError(LULL_E_QUIESCE_REFUSED | LULL_E_QUIESCE_TIMEOUT); under
   * `crash-consistent` it resolves with CRASH.
   */
  quiesce(): Promise<Consistency>;
  /**
   * The engine has nothing to quiesce (vzdump on a guest that is not running): closes the job's
   * barrier without one — consistency CRASH, with `reason` recorded — so it may leave `queued` for
   * snapshotting or archiving. Optional: engines that always quiesce need not call it.
   */
  skipQuiesce?(reason: string): void;
  /** Enters `snapshotting`. */
  snapshotting(mode: SnapshotMode): void;
  /**
   * Enters `snapshotted`: only when a point-in-time copy exists (stacks may resume now). The engine
   * must await it: for a member of a consistency group it first waits until every member's copy
   * exists, and rejects (LULL_E_GROUP_MEMBER_FAILED) when the group failed meanwhile — the engine
   * then releases its copy and fails. For a job outside a group it commits at once (and may return void).
   */
  snapshotted(info: { mode: SnapshotMode; snapshotAt: number }): void | Promise<void>;
  /** Enters `archiving`. */
  archiving(info: { mode: SnapshotMode; bytesTotal: number }): void;
  /**
   * Archive progress; rate-limited by the caller, persisted as the job's byte counters. A returned
   * promise asks the engine to hold its archive until it settles (a crash test's paused run); an
   * engine that cannot hold (vzdump writes its own archive) may ignore it.
   */
  progress(bytesDone: number, bytesTotal: number): void | Promise<void>;
  /** Something worth recording with the job (engine output, a downgrade). */
  note(message: string): void;
}

export interface EngineResult {
  archivePath: string;
  archiveBytes: number;
  /** What the engine recorded while writing (native archives); vzdump/PBS leave it out. */
  sha256?: string;
  manifest?: { fileCount: number; totalBytes: number };
}

export interface EngineRun {
  jobId: string;
  guest: GuestConfig;
  hooks: EngineHooks;
  /** Aborts on cancellation, on the agent's shutdown, and when the job's consistency group fails before its snapshot point. */
  signal: AbortSignal;
  log: Logger;
  /** Set when the job is a member of a consistency group run (its barrier and point are the group's). */
  groupRunId?: string | undefined;
}

export interface BackupEngine {
  readonly name: "native" | "vzdump";
  /** Runs the backup; throws a LullError with a stable code on failure. Cleans up after itself in `finally`. */
  run(run: EngineRun): Promise<EngineResult>;
  /** Start-up sweep: removes what a crashed run left behind (by the agent's prefix). Returns what it removed. */
  sweep(guests: readonly GuestConfig[], signal?: AbortSignal): Promise<string[]>;
}
