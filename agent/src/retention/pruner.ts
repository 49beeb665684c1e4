// Runs retention: a pass lists what the policy lets go and deletes it in bounded batches (a few
// dozen jobs or some thousands of events per transaction), yielding to the event loop between
// batches, so the agent keeps answering calls and running jobs while it prunes a long history.
// `start()` runs a pass at once and then every interval (an explicit timer); `close()` clears the
// timer, stops a running pass after its current batch and waits for it. Passes never overlap.
import { asLullError, type Clock, type Logger } from "@lull/shared";
import type { JobStore } from "../jobs/store.js";
import { DAY_MS, type RetentionPolicy } from "./config.js";
import { reclaimFreePages } from "../ledger/database.js";
import { PruneStore, type PruneCounts, type PruneUnit } from "./prune-store.js";

/** Upper bounds of one delete transaction (a unit is never split, so one large unit may exceed the event bound). */
export const BATCH_MAX_JOBS = 50;
export const BATCH_MAX_EVENTS = 20_000;

export interface RetentionReport extends PruneCounts {
  batches: number;
  /** The pass stopped early (the agent is stopping); the next start goes on. */
  stopped: boolean;
}

export interface RetentionPrunerOptions {
  store: JobStore;
  policy: RetentionPolicy;
  intervalMs: number;
  clock: Clock;
  log: Logger;
  batch?: { maxJobs: number; maxEvents: number };
}

/** Splits units into batches of at most `maxJobs` jobs and about `maxEvents` events (at least one unit each). */
export function batchesOf(units: readonly PruneUnit[], limits: { maxJobs: number; maxEvents: number }): PruneUnit[][] {
  const batches: PruneUnit[][] = [];
  let current: PruneUnit[] = [];
  let jobs = 0;
  let events = 0;
  for (const unit of units) {
    if (current.length > 0 && (jobs + unit.jobIds.length > limits.maxJobs || events + unit.events > limits.maxEvents)) {
      batches.push(current);
      current = [];
      jobs = 0;
      events = 0;
    }
    current.push(unit);
    jobs += unit.jobIds.length;
    events += unit.events;
  }
  if (current.length > 0) batches.push(current);
  return batches;
}

const yieldToEventLoop = () => new Promise<void>((resolve) => setImmediate(resolve));

export class RetentionPruner {
  private readonly prune: PruneStore;
  private readonly stop = new AbortController();
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<RetentionReport> | undefined;

  constructor(private readonly o: RetentionPrunerOptions) {
    this.prune = new PruneStore(o.store);
  }

  /** A pass now and then one every interval, until close(). */
  start(): void {
    if (this.stop.signal.aborted || this.timer) return;
    void this.runOnce();
    this.timer = setInterval(() => void this.runOnce(), this.o.intervalMs);
    this.timer.unref();
  }

  /** One pass (or the one already running). Never rejects: a failing pass is logged and the next one tries again. */
  runOnce(): Promise<RetentionReport> {
    this.running ??= this.pass().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    this.stop.abort();
    await this.running;
  }

  private async pass(): Promise<RetentionReport> {
    const { policy, log, clock } = this.o;
    const report: RetentionReport = { jobs: 0, groupRuns: 0, events: 0, otherRows: 0, batches: 0, stopped: false };
    const started = clock.now();
    const policyFields = { maxAgeDays: policy.maxAgeMs / DAY_MS, keepLast: policy.keepLast };
    if (this.stop.signal.aborted) return { ...report, stopped: true };
    try {
      const units = this.prune.prunableUnits(policy, started);
      for (const batch of batchesOf(units, this.o.batch ?? { maxJobs: BATCH_MAX_JOBS, maxEvents: BATCH_MAX_EVENTS })) {
        if (this.stop.signal.aborted) {
          report.stopped = true;
          break;
        }
        const counts = this.prune.deleteUnits(batch);
        report.jobs += counts.jobs;
        report.groupRuns += counts.groupRuns;
        report.events += counts.events;
        report.otherRows += counts.otherRows;
        report.batches += 1;
        await yieldToEventLoop();
      }
    } catch (err) {
      const e = asLullError(err);
      log.error({ code: e.code, err: e.message, ...report }, "retention pass failed");
      return report;
    }
    let reclaimedBytes = 0;
    if (report.jobs > 0 && !this.stop.signal.aborted) {
      try {
        reclaimedBytes = reclaimFreePages(this.o.store.connection);
      } catch (err) {
        // The rows are gone either way; the space comes back at the next pass.
        log.warn({ err: asLullError(err).message }, "retention could not return free pages to the file system");
      }
    }
    const fields = { ...report, ...policyFields, reclaimedBytes, durationMs: clock.now() - started };
    if (report.jobs > 0) log.info(fields, "retention pruned ended jobs");
    else log.debug(fields, "retention found nothing to prune");
    return report;
  }
}
