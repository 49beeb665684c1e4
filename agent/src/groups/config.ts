// The `groups` key of the agent's configuration: consistency groups of guests backed up as one.
//   groups: [{ "id": "shop", "guests": ["101", "102"], "policy": "fail", "quiesceTimeoutMs": 60000 }]
// Checked with the rest of the config: ids unique, at least two members, no duplicate member,
// every member a configured guest whose engine can share one snapshot point (native, and vzdump in
// snapshot mode — at most one vzdump guest per node, see vzdumpPerNodeProblem).
// A member on another node of the cluster is listed under `remote` (README.md, "Across nodes"):
//   groups: [{ "id": "shop", "guests": ["101"], "remote": [{ "guest": "201", "node": "pve2" }] }]
// Its guest is configured on that node's agent (checked there when the run asks it to join);
// here: a node name other than this node's, the cluster listener enabled, no guest twice.
import { GUEST_ID, NODE_NAME, z } from "@lull/shared";
import { GROUP_ID } from "./group-run.js";

/** The most members a group (configured, or a run's ad hoc guests) may have. */
export const MAX_MEMBERS = 64;

export const groupConfigSchema = z.strictObject({
  id: z.string().regex(GROUP_ID, { message: `must match ${GROUP_ID.source}` }),
  guests: z.array(z.string().regex(GUEST_ID, { message: `must match ${GUEST_ID.source}` })).max(MAX_MEMBERS),
  /** Members hosted by other nodes of the cluster: the guest's id on that node and the node's name. */
  remote: z
    .array(
      z.strictObject({
        guest: z.string().regex(GUEST_ID, { message: `must match ${GUEST_ID.source}` }),
        node: z.string().regex(NODE_NAME, { message: `must be a Proxmox node name (${NODE_NAME.source})` }),
      }),
    )
    .max(MAX_MEMBERS)
    .optional(),
  /** The group's quiesce policy and timeout; the agent-wide ones otherwise (members' own settings do not apply in a group). */
  policy: z.enum(["fail", "crash-consistent"]).optional(),
  quiesceTimeoutMs: z.number().int().min(100).max(3_600_000).optional(),
});

export type GroupConfig = z.output<typeof groupConfigSchema>;

/** Engines whose runs can share one barrier and one snapshot point across guests (see README.md). */
export const GROUP_ENGINES: ReadonlySet<string> = new Set(["native", "vzdump"]);

export function groupEngineProblem(guestId: string, engine: string): string | undefined {
  if (GROUP_ENGINES.has(engine)) return undefined;
  return `guest ${guestId} uses the ${engine} engine, which cannot share one snapshot point with other guests`;
}

/**
 * vzdump backs a node's guests up one after another (its global lock, /var/run/vzdump.lock): a second
 * vzdump member on the same node could start only after the first one's whole backup, and the
 * first one's stacks would stay stopped until then (the group's point waits for every copy). So a
 * group holds at most one vzdump guest per node; undefined when `vzdumpGuests` (of one node) are fine.
 */
export function vzdumpPerNodeProblem(vzdumpGuests: readonly string[], node = "this node"): string | undefined {
  if (vzdumpGuests.length <= 1) return undefined;
  return `guests ${vzdumpGuests.join(", ")} of ${node} all use the vzdump engine: vzdump backs up one guest at a time per node (its global lock), so the first one's stacks would stay stopped through the others' whole backups; a group holds at most one vzdump guest per node (put the others in their own groups, or back them up with the native engine)`;
}

interface Issue {
  path: (string | number)[];
  message: string;
}

/** What the checks need of the rest of the config: this node's name and whether the cluster listener is on. */
export interface GroupClusterContext {
  node: string;
  clusterEnabled: boolean;
}

/** Problems of the `groups` key, each with its path, given the configured guests. */
export function groupConfigIssues(
  groups: readonly GroupConfig[],
  guests: ReadonlyArray<{ id: string; engine: string }>,
  cluster: GroupClusterContext = { node: "", clusterEnabled: false },
): Issue[] {
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
    const perNode = vzdumpPerNodeProblem(group.guests.filter((id) => byId.get(id)?.engine === "vzdump"));
    if (perNode) issues.push({ path: ["groups", i, "guests"], message: perNode });
    const remote = group.remote ?? [];
    if (group.guests.length + remote.length < 2) {
      issues.push({ path: ["groups", i, "guests"], message: "a group needs at least two guests (here and under remote together)" });
    }
    if (group.guests.length + remote.length > MAX_MEMBERS) {
      issues.push({ path: ["groups", i, "remote"], message: `a group has at most ${MAX_MEMBERS} members` });
    }
    if (remote.length > 0 && !cluster.clusterEnabled) {
      issues.push({ path: ["groups", i, "remote"], message: "members on other nodes join through the cluster listener: set cluster.enabled to true (agent/SECURITY.md, node credentials)" });
    }
    const remoteKeys = new Set<string>();
    remote.forEach((m, j) => {
      const path = ["groups", i, "remote", j];
      if (m.node === cluster.node) {
        issues.push({ path: [...path, "node"], message: `node ${m.node} is this node: list guest ${m.guest} under guests instead` });
      }
      const key = `${m.node}/${m.guest}`;
      if (remoteKeys.has(key)) issues.push({ path, message: `guest ${m.guest} of node ${m.node} is listed twice` });
      remoteKeys.add(key);
    });
  });
  return issues;
}
