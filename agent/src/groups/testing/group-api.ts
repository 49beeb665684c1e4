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
import { agentApiOf, isTerminal } from "@lull/shared";

export interface GroupApi {
  startGroupBackup(req: Partial<StartGroupBackupRequest>): Promise<StartGroupBackupResponse>;
  getGroup(req: Partial<GetGroupRequest>): Promise<GroupRun>;
  listGroups(req: Partial<ListGroupsRequest>): Promise<ListGroupsResponse>;
  cancelGroup(req: Partial<CancelGroupRequest>): Promise<CancelGroupResponse>;
}

/** The shared typed client's group calls over `client`, with requests filled with defaults. */
export function groupApi(client: AgentClient): GroupApi {
  const api = agentApiOf(client);
  return {
    startGroupBackup: (r) => api.startGroupBackup(StartGroupBackupRequest.fromPartial(r)),
    getGroup: (r) => api.getGroup(GetGroupRequest.fromPartial(r)),
    listGroups: (r) => api.listGroups(ListGroupsRequest.fromPartial(r)),
    cancelGroup: (r) => api.cancelGroup(CancelGroupRequest.fromPartial(r)),
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
