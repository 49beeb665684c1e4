// Convergence after crashes, from real state: every job ended with an honest outcome, every stack
// runs, no marker is left, nothing the agent created outlived its job, no stack was stopped twice
// for one job, and every watcher was told every job's end.
import { existsSync, statSync } from "node:fs";
import { Phase, type Job } from "@lull/proto";
import { isTerminal, phaseName } from "@lull/shared";
import type { EventFollower } from "./event-follower.js";
import type { Site } from "./site.js";
import { countInvocations, countStopRuns } from "./stack-ledger.js";
import { sleep } from "./temp.js";

export interface JobRef {
  guestId: string;
  jobId: string;
}

export interface ConvergenceReport {
  /** The jobs as the agent reports them at the end (missing when the agent did not answer). */
  jobs: Job[];
  stuck: string[];
  dishonest: string[];
  notRunning: string[];
  markers: string[];
  leftovers: string[];
  /** Stacks put through more outages (stop after a start) than they had jobs. */
  doubleStops: string[];
  untold: string[];
  problems: string[];
}

export interface ConvergenceOptions {
  jobs: readonly JobRef[];
  /** Ledger entries from this time on count (the start of the scenario). */
  sinceMs: number;
  followers?: readonly EventFollower[];
  timeoutMs: number;
}

/** Why a terminal job's outcome is not honest, or undefined when it is. */
export function dishonestyOf(job: Job): string | undefined {
  if (job.phase === Phase.PHASE_DONE) {
    if (!job.archivePath || job.archiveBytes <= 0) return "done without an archive";
    if (job.errorCode) return `done with error ${job.errorCode}`;
    return undefined;
  }
  if (job.phase === Phase.PHASE_FAILED) {
    if (!job.errorCode.startsWith("LULL_E_")) return `failed without a stable error code (${job.errorCode || "none"})`;
    if (job.failedIn === Phase.PHASE_UNSPECIFIED || isTerminal(job.failedIn)) return `failed in no real phase (${phaseName(job.failedIn)})`;
    if (job.archivePath) {
      // The agent died between the archive's final rename and `done`: recovery records the archive
      // on the failed job. Honest only then, and only when it is really there, whole.
      if (job.errorCode !== "LULL_E_AGENT_RESTARTED") return "failed but names an archive";
      const size = existsSync(job.archivePath) ? statSync(job.archivePath).size : -1;
      if (size !== job.archiveBytes) return `failed naming an archive that is not there whole (${job.archivePath}, ${size} of ${job.archiveBytes} bytes)`;
    }
    return undefined;
  }
  if (job.phase === Phase.PHASE_CANCELLED) return job.archivePath ? "cancelled but names an archive" : undefined;
  return `not terminal (${phaseName(job.phase)})`;
}

/** Describes a job's outcome as `done`, `failed@<phase>:<code>` or `cancelled@<phase>`. */
export function outcomeOf(job: Job): string {
  if (job.phase === Phase.PHASE_FAILED) return `failed@${phaseName(job.failedIn)}:${job.errorCode}`;
  return phaseName(job.phase);
}

async function snapshotOf(site: Site, o: ConvergenceOptions): Promise<ConvergenceReport> {
  const r: ConvergenceReport = { jobs: [], stuck: [], dishonest: [], notRunning: [], markers: [], leftovers: [], doubleStops: [], untold: [], problems: [] };
  const client = site.agent.client();
  for (const ref of o.jobs) {
    let job: Job;
    try {
      job = await client.getJob(ref.guestId, ref.jobId);
    } catch (err) {
      r.stuck.push(`${ref.jobId}: agent did not answer (${(err as Error).message})`);
      continue;
    }
    r.jobs.push(job);
    if (!isTerminal(job.phase)) {
      r.stuck.push(`${job.id} in ${phaseName(job.phase)}`);
      continue;
    }
    const why = dishonestyOf(job);
    if (why) r.dishonest.push(`${job.id}: ${why}`);
    for (const f of o.followers ?? []) if (!f.terminalEventOf(job.id)) r.untold.push(`${job.id}: a watcher never saw its end`);
  }
  for (const stack of site.stacks) {
    const status = await stack.status().catch((err: unknown) => `unknown (${(err as Error).message})`);
    if (status !== "running") r.notRunning.push(`${stack.key}: ${status}`);
    if (stack.markerPresent()) r.markers.push(`${stack.key}: ${stack.markerPath}`);
    const jobsOfGuest = o.jobs.filter((j) => j.guestId === stack.guestId).length;
    const entries = stack.ledgerEntries();
    const outages = countStopRuns(entries, o.sinceMs);
    if (outages > jobsOfGuest) {
      const stops = countInvocations(entries, "stop", o.sinceMs);
      r.doubleStops.push(`${stack.key}: stopped again after a start (${outages} outages, ${stops} stops) for ${jobsOfGuest} job(s)`);
    }
  }
  r.leftovers = await site.leftovers();
  r.problems = [
    ...r.stuck.map((s) => `stuck job ${s}`),
    ...r.dishonest.map((s) => `dishonest outcome ${s}`),
    ...r.notRunning.map((s) => `stack not running ${s}`),
    ...r.markers.map((s) => `marker left ${s}`),
    ...r.leftovers.map((s) => `leftover ${s}`),
    ...r.doubleStops.map((s) => `stopped twice ${s}`),
    ...r.untold.map((s) => `untold ${s}`),
  ];
  return r;
}

/**
 * Polls until the site has converged or `timeoutMs` passed; returns the last report (its
 * `problems` is empty when converged). A stop counted twice never heals, so it ends the wait.
 */
export async function awaitConvergence(site: Site, o: ConvergenceOptions): Promise<ConvergenceReport> {
  const deadline = Date.now() + o.timeoutMs;
  for (;;) {
    const report = await snapshotOf(site, o);
    if (report.problems.length === 0 || report.doubleStops.length > 0 || Date.now() >= deadline) return report;
    await sleep(200);
  }
}
