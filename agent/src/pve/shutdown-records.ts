// What the crash cleanup (./cleanup.ts, ./guest-restart.ts) reads and writes about guests vzdump
// shut down in stop mode. The vzdump engine keeps these records in the agent's database
// (../engines/vzdump/shutdown-store.ts); this is the cleanup's view of them, so the Proxmox
// adapters do not depend on the engine.
import type { GuestType } from "./guest-config.js";

export interface VzdumpShutdown {
  jobId: string;
  vmid: number;
  vmtype: GuestType;
  shutdownAt: number;
  restartBegunAt?: number | undefined;
  restartedAt?: number | undefined;
  /** vzdump logged its archive line after the shutdown: stop_vm had returned, the guest was down. */
  stopReturnedAt?: number | undefined;
  /**
   * The guest's `lock: backup` was released for this record by vzdump's own clean-up after this
   * agent stopped it, or by the crash cleanup: a lock missing later is not an operator's doing.
   */
  releasedAt?: number | undefined;
  settledAt?: number | undefined;
  outcome: string;
  notedAt?: number | undefined;
}

export interface ShutdownRecords {
  /** Shutdowns vzdump did not undo and the cleanup has not settled: of ended jobs, and of `endingJobId`. */
  open(endingJobId?: string): VzdumpShutdown[];
  /** Open shutdowns of jobs that still run (not `endingJobId`): their guests are left to those runs. */
  ofRunningJobs(endingJobId?: string): VzdumpShutdown[];
  /** The guest's lock: backup is known released by vzdump's clean-up (this agent's TERM) or by the crash cleanup. */
  recordReleased(jobId: string, at: number): void;
  /** The cleanup decided (started the guest, or left it): `outcome` is the job's note. */
  settle(jobId: string, outcome: string, at: number): void;
  /** Settled shutdowns whose outcome is not on their job yet. */
  unnoted(): VzdumpShutdown[];
  markNoted(jobId: string, at: number): void;
}
