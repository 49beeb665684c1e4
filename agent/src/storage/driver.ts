// Port: a storage driver of the native engine takes a point-in-time copy of a guest's
// volumes and removes it again. Real adapters: dir, btrfs (this machine), lvmthin, zfs.
import type { SnapshotMode } from "@lull/proto";
import type { Clock, Logger } from "@lull/shared";
import type { AgentConfig, NativeGuestConfig } from "../config.js";
import type { CommandRunner } from "@lull/shared";

export interface SnapshotRequest {
  jobId: string;
  guest: NativeGuestConfig;
  signal: AbortSignal;
}

export interface SnapshotVolume {
  /** Volume name from the config; the top-level directory of this volume in the archive. */
  name: string;
  /** Where the live data is. */
  sourcePath: string;
  /** Where the point-in-time copy can be read (equals sourcePath for mode NONE). */
  readPath: string;
}

export interface SnapshotHandle {
  jobId: string;
  mode: SnapshotMode;
  /** When the point-in-time copy was taken (ms since epoch); the moment of the snapshot, not of the call. */
  createdAt: number;
  volumes: SnapshotVolume[];
  /** Driver-specific names of what was created (subvolumes, LVs, datasets), for release and logs. */
  artifacts: string[];
  /** What the job should record about this copy (e.g. the atomicity a multi-pool guest gets). */
  notes?: string[];
}

export interface StorageDriver {
  readonly kind: "dir" | "btrfs" | "lvmthin" | "zfs";
  /** The mode this driver produces for a guest (SNAPSHOT, COPY or NONE). */
  modeFor(guest: NativeGuestConfig): SnapshotMode;
  /**
   * Checks, before any stack is stopped, that snapshot() can work (each volume exists and is of
   * the driver's kind). A failure fails the job before its stacks are touched, and the checks
   * stay out of the downtime window. Optional: drivers without checks of their own omit it.
   */
  preflight?(request: SnapshotRequest): Promise<void>;
  /** Takes the copy (after preflight). On failure nothing it created is left behind. */
  snapshot(request: SnapshotRequest): Promise<SnapshotHandle>;
  /** Removes what snapshot() created. Idempotent. */
  release(handle: SnapshotHandle, signal?: AbortSignal): Promise<void>;
  /** Removes everything carrying the agent's prefix that a crashed run left (optionally only of one job); returns what it removed. */
  sweep(guests: readonly NativeGuestConfig[], options?: { jobId?: string; signal?: AbortSignal }): Promise<string[]>;
}

export type StorageKind = StorageDriver["kind"];

/** What every driver is built from (see ./index.ts: createStorageDriver). */
export interface StorageDriverDeps {
  config: AgentConfig;
  runner: CommandRunner;
  log: Logger;
  clock: Clock;
}
