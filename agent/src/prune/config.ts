// The `prune` key of the agent's configuration: retention of restore points (not of job history,
// which is `retention`). PBS's keep options; with none set, every point is kept.
//   prune: { keep: { keepLast: 3, keepDaily: 7, keepWeekly: 4 }, guests: { "101": { keepLast: 10 } } }
import { z } from "@lull/shared";

const count = z.number().int().min(0).max(100_000).optional();

export const keepOptionsSchema = z.strictObject({
  keepLast: count,
  keepHourly: count,
  keepDaily: count,
  keepWeekly: count,
  keepMonthly: count,
  keepYearly: count,
});

export const pruneConfigSchema = z.strictObject({
  /** Every guest's keep options, unless `guests` names its own. */
  keep: keepOptionsSchema.default({}),
  /** Per guest id: keep options that replace `keep` for that guest. */
  guests: z.record(z.string(), keepOptionsSchema).default({}),
  /** Foreign points (vzdump archives made without Lull) count and are pruned like Lull's own; default: always kept. */
  includeForeign: z.boolean().default(false),
});

export type PruneConfig = z.output<typeof pruneConfigSchema>;
