// The `retention` key of the agent's configuration: how long ended jobs stay in the job store.
//   retention: { "jobs": { "maxAgeDays": 90, "keepLast": 10 }, "intervalMinutes": 60 }
// A job that ended (done, failed, cancelled) more than `maxAgeDays` ago is deleted with its events
// and every other row that belongs to it, unless it is one of the `keepLast` newest ended jobs of
// its guest, which stay whatever their age. A job of a consistency group run goes only together
// with every other member of the run (and the run's own rows), once each of them may go and the
// run has ended. Jobs that have not ended are never deleted. The agent prunes at start-up and then
// every `intervalMinutes`. A deleted job's idempotency key is free again (GetJob: LULL_E_JOB_NOT_FOUND).
import { z } from "@lull/shared";

export const DAY_MS = 24 * 60 * 60 * 1000;

export const retentionConfigSchema = z.strictObject({
  jobs: z
    .strictObject({
      /** Ended jobs older than this (by when they ended) are deleted; 36500 keeps them for good. */
      maxAgeDays: z.number().int().min(1).max(36_500).default(90),
      /** The newest ended jobs of each guest that are kept whatever their age (0: none). */
      keepLast: z.number().int().min(0).max(1_000_000).default(10),
    })
    .prefault({}),
  /** How often the agent prunes (it also prunes once at start-up). */
  intervalMinutes: z.number().int().min(1).max(7 * 24 * 60).default(60),
});

export type RetentionConfig = z.output<typeof retentionConfigSchema>;

/** The policy the pruner applies, in the units it works with. */
export interface RetentionPolicy {
  maxAgeMs: number;
  keepLast: number;
}

export function retentionPolicy(config: RetentionConfig): RetentionPolicy {
  return { maxAgeMs: config.jobs.maxAgeDays * DAY_MS, keepLast: config.jobs.keepLast };
}
