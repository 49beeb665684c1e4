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
  settledAt?: number | undefined;
  outcome: string;
  notedAt?: number | undefined;
}

export interface ShutdownRecords {
  /** Shutdowns vzdump did not undo and the cleanup has not settled: of ended jobs, and of `endingJobId`. */
  open(endingJobId?: string): VzdumpShutdown[];
  /** Open shutdowns of jobs that still run (not `endingJobId`): their guests are left to those runs. */
  ofRunningJobs(endingJobId?: string): VzdumpShutdown[];
  /** The cleanup decided (started the guest, or left it): `outcome` is the job's note. */
  settle(jobId: string, outcome: string, at: number): void;
  /** Settled shutdowns whose outcome is not on their job yet. */
  unnoted(): VzdumpShutdown[];
  markNoted(jobId: string, at: number): void;
}
