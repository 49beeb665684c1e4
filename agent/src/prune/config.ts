// The `prune` key of the agent's configuration: retention of restore points (not of job history,
// which is `retention`). PBS's keep options; with none set, every point is kept.
//   prune: { keep: { keepLast: 3, keepDaily: 7, keepWeekly: 4 }, guests: { "101": { keepLast: 10 } },
//            groups: { "shop": { keepDaily: 14 } } }
// A guest's options: its own under `guests`, else its group's under `groups`, else `keep`. A group's
// members share one snapshot time per run, so the same options keep the same runs of every member.
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
  /** Per consistency group id: keep options for every member guest without its own under `guests`. */
  groups: z.record(z.string(), keepOptionsSchema).default({}),
  /** Foreign points (vzdump archives made without Lull) count and are pruned like Lull's own; default: always kept. */
  includeForeign: z.boolean().default(false),
});

interface Issue {
  path: (string | number)[];
  message: string;
}

/** Problems of `prune.guests`/`prune.groups` given the configured guests and groups. */
export function pruneConfigIssues(prune: PruneConfig, guestIds: readonly string[], groups: ReadonlyArray<{ id: string; guests: readonly string[] }>): Issue[] {
  const issues: Issue[] = [];
  for (const id of Object.keys(prune.guests)) {
    if (!guestIds.includes(id)) issues.push({ path: ["prune", "guests", id], message: `guest ${id} is not configured under guests` });
  }
  const owner = new Map<string, string>();
  for (const id of Object.keys(prune.groups)) {
    const group = groups.find((g) => g.id === id);
    if (group === undefined) {
      issues.push({ path: ["prune", "groups", id], message: `group ${id} is not configured under groups` });
      continue;
    }
    for (const guest of group.guests) {
      const other = owner.get(guest);
      if (other !== undefined && prune.guests[guest] === undefined && JSON.stringify(prune.groups[other]) !== JSON.stringify(prune.groups[id])) {
        issues.push({
          path: ["prune", "groups", id],
          message: `guest ${guest} is in groups ${other} and ${id}, whose keep options differ: give the guest its own under prune.guests, or the groups the same`,
        });
      }
      owner.set(guest, id);
    }
  }
  return issues;
}

/** A guest's keep options and where they come from (for the dry run's words). */
export function keepOptionsFor(prune: PruneConfig, guestId: string, groups: ReadonlyArray<{ id: string; guests: readonly string[] }>) {
  const own = prune.guests[guestId];
  if (own !== undefined) return { keep: own, from: `prune.guests.${guestId}` };
  const group = groups.find((g) => g.guests.includes(guestId) && prune.groups[g.id] !== undefined);
  if (group !== undefined) return { keep: prune.groups[group.id]!, from: `prune.groups.${group.id}` };
  return { keep: prune.keep, from: "prune.keep" };
}

export type PruneConfig = z.output<typeof pruneConfigSchema>;
