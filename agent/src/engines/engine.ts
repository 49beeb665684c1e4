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
  /** Enters `snapshotting`. */
  snapshotting(mode: SnapshotMode): void;
  /** Enters `snapshotted`: only when a point-in-time copy exists (stacks may resume now). */
  snapshotted(info: { mode: SnapshotMode; snapshotAt: number }): void;
  /** Enters `archiving`. */
  archiving(info: { mode: SnapshotMode; bytesTotal: number }): void;
  /** Archive progress; rate-limited by the caller, persisted as the job's byte counters. */
  progress(bytesDone: number, bytesTotal: number): void;
  /** Something worth recording with the job (engine output, a downgrade). */
  note(message: string): void;
}

export interface EngineResult {
  archivePath: string;
  archiveBytes: number;
}

export interface EngineRun {
  jobId: string;
  guest: GuestConfig;
  hooks: EngineHooks;
  signal: AbortSignal;
  log: Logger;
}

export interface BackupEngine {
  readonly name: "native" | "vzdump";
  /** Runs the backup; throws a LullError with a stable code on failure. Cleans up after itself in `finally`. */
  run(run: EngineRun): Promise<EngineResult>;
  /** Start-up sweep: removes what a crashed run left behind (by the agent's prefix). Returns what it removed. */
  sweep(guests: readonly GuestConfig[], signal?: AbortSignal): Promise<string[]>;
}
