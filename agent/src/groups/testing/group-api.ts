// The group RPCs as promises for tests (requests filled with defaults), and a poll for a run.
import { strict as assert } from "node:assert";
import {
  CancelGroupRequest,
  GetGroupRequest,
  ListGroupsRequest,
  StartGroupBackupRequest,
  type AgentClient,
  type CancelGroupResponse,
  type GroupRun,
  type ListGroupsResponse,
  type StartGroupBackupResponse,
} from "@lull/proto";
import { callUnary, isTerminal } from "@lull/shared";

export interface GroupApi {
  startGroupBackup(req: Partial<StartGroupBackupRequest>): Promise<StartGroupBackupResponse>;
  getGroup(req: Partial<GetGroupRequest>): Promise<GroupRun>;
  listGroups(req: Partial<ListGroupsRequest>): Promise<ListGroupsResponse>;
  cancelGroup(req: Partial<CancelGroupRequest>): Promise<CancelGroupResponse>;
}

export function groupApi(client: AgentClient): GroupApi {
  const opts = { timeoutMs: 10_000 };
  return {
    startGroupBackup: (r) => callUnary(client.startGroupBackup.bind(client), StartGroupBackupRequest.fromPartial(r), opts),
    getGroup: (r) => callUnary(client.getGroup.bind(client), GetGroupRequest.fromPartial(r), opts),
    listGroups: (r) => callUnary(client.listGroups.bind(client), ListGroupsRequest.fromPartial(r), opts),
    cancelGroup: (r) => callUnary(client.cancelGroup.bind(client), CancelGroupRequest.fromPartial(r), opts),
  };
}

/** Polls GetGroup until `until(run)` holds; fails after `timeoutMs` with the last run seen. */
export async function waitForGroup(api: GroupApi, groupRunId: string, until: (run: GroupRun) => boolean = (r) => isTerminal(r.phase), timeoutMs = 5_000): Promise<GroupRun> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const run = await api.getGroup({ groupRunId });
    if (until(run)) return run;
    if (Date.now() > deadline) assert.fail(`group run ${groupRunId} did not reach the expected state within ${timeoutMs} ms; last: ${JSON.stringify(run)}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
