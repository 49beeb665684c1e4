// Validation of the group RPCs' requests, before anything runs. A group request always resolves
// to the full, sorted list of its member guests: the configured members of `group_id`, or the
// ad hoc `guest_ids`. Listing guests together with a group id is allowed only when they are
// exactly its members (so the scope check on the listed guests is the scope of what runs).
import type { CancelGroupRequest, GetGroupRequest, ListGroupsRequest, StartGroupBackupRequest } from "@lull/proto";
import { LIMITS, LullError, validate } from "@lull/shared";
import type { GuestConfig } from "../config.js";
import { pagePosition } from "./page-token.js";
import { backupOptions, optionalGuest, optionalRange, requireGuest, type GuestDirectory } from "./validate.js";
import { MAX_MEMBERS, groupEngineProblem, vzdumpPerNodeProblem, type GroupConfig } from "../groups/config.js";
import { GROUP_ID, validGroupRunId } from "../groups/group-run.js";
import type { RemoteMemberSpec } from "../groups/coordinator.js";

export type GroupDirectory = ReadonlyMap<string, GroupConfig>;

const invalid = (message: string) => new LullError("LULL_E_INVALID_ARGUMENT", message);

export function requireGroup(groups: GroupDirectory, value: string, field = "group_id"): GroupConfig {
  if (!GROUP_ID.test(value)) throw invalid(`${field} is not a valid group id (expected ${GROUP_ID.source})`);
  const group = groups.get(value);
  if (!group) throw new LullError("LULL_E_GROUP_NOT_FOUND", `group ${value} is not configured on this agent`);
  return group;
}

function listedGuests(req: StartGroupBackupRequest): string[] {
  if (req.guestIds.length > MAX_MEMBERS) throw invalid(`guest_ids lists more than ${MAX_MEMBERS} guests`);
  const ids = req.guestIds.map((g, i) => validate.guestId(g, `guest_ids[${i}]`));
  const seen = new Set<string>();
  for (const id of ids) {
    if (seen.has(id)) throw invalid(`guest_ids lists guest ${id} twice`);
    seen.add(id);
  }
  return ids.sort();
}

/** The member guests of a group request, sorted; throws when they cannot form a group. */
export function membersOf(
  guests: GuestDirectory,
  groups: GroupDirectory,
  req: StartGroupBackupRequest,
): { groupId: string; members: GuestConfig[]; remote: RemoteMemberSpec[] } {
  const listed = listedGuests(req);
  let ids = listed;
  if (req.groupId !== "") {
    const group = requireGroup(groups, req.groupId);
    const configured = [...group.guests].sort();
    if (listed.length > 0 && listed.join(",") !== configured.join(",")) {
      throw invalid(`guest_ids must be empty or exactly the members of group ${group.id} (${configured.join(", ")})`);
    }
    ids = configured;
  } else if (listed.length < 2) {
    throw invalid("a group names a configured group_id, or at least two guest_ids");
  }
  const members = ids.map((id) => requireGuest(guests, id));
  for (const guest of members) {
    const problem = groupEngineProblem(guest.id, guest.engine);
    if (problem) throw new LullError("LULL_E_GROUP_UNSUPPORTED", `${problem}; see the group guarantees per engine in the agent's documentation`);
  }
  const perNode = vzdumpPerNodeProblem(members.filter((g) => g.engine === "vzdump").map((g) => g.id));
  if (perNode) throw new LullError("LULL_E_GROUP_UNSUPPORTED", perNode);
  // Members on other nodes come only from a configured group (an ad hoc request names guests of this node).
  const remote = req.groupId !== "" ? [...(groups.get(req.groupId)?.remote ?? [])] : [];
  return { groupId: req.groupId, members, remote };
}

export function startGroupBackupRequest(guests: GuestDirectory, groups: GroupDirectory, req: StartGroupBackupRequest) {
  const { groupId, members, remote } = membersOf(guests, groups, req);
  return { groupId, group: groupId ? groups.get(groupId) : undefined, members, remote, ...backupOptions(req) };
}

export function getGroupRequest(req: GetGroupRequest) {
  return { groupRunId: validGroupRunId(req.groupRunId) };
}

export function listGroupsRequest(guests: GuestDirectory, req: ListGroupsRequest) {
  const limit = optionalRange(req.limit, "limit", 1, 1000) ?? 50;
  return { guestId: optionalGuest(guests, req.guestId)?.id, activeOnly: req.activeOnly === true, limit, before: pagePosition(req.pageToken) };
}

export function cancelGroupRequest(req: CancelGroupRequest) {
  const groupRunId = validGroupRunId(req.groupRunId);
  const reason = validate.text(req.reason, "reason", LIMITS.reason);
  return { groupRunId, reason: reason === "" ? "cancelled by request" : reason };
}
