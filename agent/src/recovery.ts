// Start-up recovery, before the agent takes any call: every job that had not ended when the
// previous agent stopped is settled as failed (failed_in = the phase it died in,
// LULL_E_AGENT_RESTARTED) with its event persisted, so watchers that reconnect see it; then
// each engine sweeps what crashed runs left behind (snapshots, staging, partial archives)
// by the agent's name prefix. Consistency group runs that had not ended are settled from their
// (now settled) member jobs, right after the jobs.
//
// A native job whose archive is already complete under its final name (the agent died after the
// archive's rename, before the job was marked done) is settled failed all the same — nothing
// confirmed it — but honestly: the job records the archive's path and size, and a note says the
// archive was written and the job could not be confirmed, so the operator decides what it is worth.
// The path is recorded before the job is settled, so a crash in between repeats both at the next start.
import { phaseName, asLullError, type Logger } from "@lull/shared";
import type { GuestConfig } from "./config.js";
import type { BackupEngine } from "./engines/engine.js";
import type { GroupLedger } from "./groups/ledger.js";
import { settleInterruptedGroups, type SettledGroup } from "./groups/recovery.js";
import type { JobLedger } from "./jobs/ledger.js";
import type { JobRecord } from "./jobs/job.js";
import { findWrittenArchive, type WrittenArchive } from "./recovery-archive.js";

export interface RecoveryOptions {
  ledger: JobLedger;
  /** Consistency group runs: settled after their member jobs. */
  groups?: GroupLedger;
  /** Leave runs past their point with members on other nodes open, to follow them there (the cluster part is on). */
  followRemoteGroups?: boolean;
  guests: readonly GuestConfig[];
  engineFor: (guest: GuestConfig) => BackupEngine;
  /** Where native runs write their archives: an interrupted job's complete archive is recorded. */
  archiveDir?: string;
  log: Logger;
  signal?: AbortSignal;
}

export interface RecoveryReport {
  /** Jobs settled as failed, with the phase each died in (and the archive a native run had completed). */
  settled: Array<{ jobId: string; guestId: string; failedIn: string; archivePath?: string; archiveBytes?: number }>;
  /** Group runs settled from their members (present when the agent has group runs to settle). */
  settledGroups?: SettledGroup[];
  /** What the sweeps removed. */
  removed: string[];
  /** Sweeps that failed (the agent starts anyway; the next start sweeps again). */
  sweepErrors: Array<{ engine: string; code: string; message: string }>;
}

/** A native job's archive that is complete on disk, if any. */
function writtenArchiveOf(job: JobRecord, archiveDir: string | undefined): WrittenArchive | undefined {
  if (archiveDir === undefined || job.engine !== "native") return undefined;
  return findWrittenArchive(archiveDir, job.guestId, job.id);
}

export function settleInterruptedJobs(ledger: JobLedger, log: Logger, archiveDir?: string): RecoveryReport["settled"] {
  const settled: RecoveryReport["settled"] = [];
  for (const job of ledger.store.nonTerminalJobs()) {
    const failedIn = phaseName(job.phase);
    const stopped = `the agent stopped while the job was ${failedIn}; settled at the next start`;
    const archive = writtenArchiveOf(job, archiveDir);
    if (!archive) {
      ledger.apply(job.id, { type: "fail", code: "LULL_E_AGENT_RESTARTED", message: stopped });
      log.warn({ jobId: job.id, guestId: job.guestId, failedIn }, "interrupted job settled");
      settled.push({ jobId: job.id, guestId: job.guestId, failedIn });
      continue;
    }
    const unconfirmed = `archive ${archive.path} (${archive.bytes} bytes) was written completely, but the agent stopped before it confirmed the job; it is kept — check it and decide whether to rely on it`;
    ledger.apply(job.id, [
      { type: "found-archive", archivePath: archive.path, archiveBytes: archive.bytes, message: unconfirmed },
      { type: "fail", code: "LULL_E_AGENT_RESTARTED", message: `${stopped}; ${unconfirmed}` },
    ]);
    log.warn({ jobId: job.id, guestId: job.guestId, failedIn, archivePath: archive.path, archiveBytes: archive.bytes }, "interrupted job settled with its archive written");
    settled.push({ jobId: job.id, guestId: job.guestId, failedIn, archivePath: archive.path, archiveBytes: archive.bytes });
  }
  return settled;
}

/** Groups guests by the engine instance that serves them, so each engine sweeps once. */
function enginesOf(guests: readonly GuestConfig[], engineFor: (guest: GuestConfig) => BackupEngine) {
  const groups = new Map<BackupEngine, GuestConfig[]>();
  for (const guest of guests) {
    const engine = engineFor(guest);
    groups.set(engine, [...(groups.get(engine) ?? []), guest]);
  }
  return groups;
}

export async function recoverAtStart(options: RecoveryOptions): Promise<RecoveryReport> {
  const { log } = options;
  const settled = settleInterruptedJobs(options.ledger, log, options.archiveDir);
  const settledGroups = options.groups ? settleInterruptedGroups(options.groups, log, { followRemote: options.followRemoteGroups === true }) : [];
  const removed: string[] = [];
  const sweepErrors: RecoveryReport["sweepErrors"] = [];
  for (const [engine, guests] of enginesOf(options.guests, options.engineFor)) {
    try {
      const gone = await engine.sweep(guests, options.signal);
      for (const item of gone) log.info({ engine: engine.name, removed: item }, "swept leftover");
      removed.push(...gone);
    } catch (err) {
      const e = asLullError(err);
      log.error({ engine: engine.name, code: e.code, err: e.message }, "start-up sweep failed");
      sweepErrors.push({ engine: engine.name, code: e.code, message: e.message });
    }
  }
  log.info({ settled: settled.length, removed: removed.length, sweepErrors: sweepErrors.length }, "start-up recovery finished");
  return { settled, removed, sweepErrors, ...(settledGroups.length > 0 ? { settledGroups } : {}) };
}
