// The `groups` key of the agent's configuration: consistency groups of guests backed up as one.
//   groups: [{ "id": "shop", "guests": ["101", "102"], "policy": "fail", "quiesceTimeoutMs": 60000 }]
// Checked with the rest of the config: ids unique, at least two members, no duplicate member,
// every member a configured guest whose engine can share one snapshot point (native only).
import { GUEST_ID, z } from "@lull/shared";
import { GROUP_ID } from "./group-run.js";

/** The most members a group (configured, or a run's ad hoc guests) may have. */
export const MAX_MEMBERS = 64;

export const groupConfigSchema = z.strictObject({
  id: z.string().regex(GROUP_ID, { message: `must match ${GROUP_ID.source}` }),
  guests: z.array(z.string().regex(GUEST_ID, { message: `must match ${GUEST_ID.source}` })).min(2, { message: "a group needs at least two guests" }).max(MAX_MEMBERS),
  /** The group's quiesce policy and timeout; the agent-wide ones otherwise (members' own settings do not apply in a group). */
  policy: z.enum(["fail", "crash-consistent"]).optional(),
  quiesceTimeoutMs: z.number().int().min(100).max(3_600_000).optional(),
});

export type GroupConfig = z.output<typeof groupConfigSchema>;

/** Engines whose runs can share one barrier and one snapshot point across guests (see README.md). */
export const GROUP_ENGINES: ReadonlySet<string> = new Set(["native"]);

export function groupEngineProblem(guestId: string, engine: string): string | undefined {
  if (GROUP_ENGINES.has(engine)) return undefined;
  return `guest ${guestId} uses the ${engine} engine, which backs guests up one after another and cannot share one snapshot point with other guests`;
}

interface Issue {
  path: (string | number)[];
  message: string;
}

/** Problems of the `groups` key, each with its path, given the configured guests. */
export function groupConfigIssues(groups: readonly GroupConfig[], guests: ReadonlyArray<{ id: string; engine: string }>): Issue[] {
  const issues: Issue[] = [];
  const byId = new Map(guests.map((g) => [g.id, g]));
  const ids = new Set<string>();
  groups.forEach((group, i) => {
    if (ids.has(group.id)) issues.push({ path: ["groups", i, "id"], message: `duplicate group id ${group.id}` });
    ids.add(group.id);
    const members = new Set<string>();
    group.guests.forEach((guestId, j) => {
      const path = ["groups", i, "guests", j];
      if (members.has(guestId)) issues.push({ path, message: `guest ${guestId} is listed twice` });
      members.add(guestId);
      const guest = byId.get(guestId);
      if (!guest) {
        issues.push({ path, message: `guest ${guestId} is not configured` });
        return;
      }
      const problem = groupEngineProblem(guestId, guest.engine);
      if (problem) issues.push({ path, message: problem });
    });
  });
  return issues;
}
