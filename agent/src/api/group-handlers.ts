// The group RPCs of lull.v1.Agent: StartGroupBackup, GetGroup, ListGroups, CancelGroup.
// StartGroupBackup creates the run and one queued job per member in one transaction (a busy
// member: nothing is created), hands the run to the coordinator, then starts every member's run.
// CancelGroup cancels every member that has not ended (cancel.ts).
import { QuiescePolicy, type CancelGroupRequest, type CancelGroupResponse, type GetGroupRequest, type GroupInfo, type GroupRun, type ListGroupsRequest, type ListGroupsResponse, type StartGroupBackupRequest, type StartGroupBackupResponse } from "@lull/proto";
import { LullError, type Clock, type Logger } from "@lull/shared";
import type { AgentConfig } from "../config.js";
import type { GuestDirectory } from "./validate.js";
import { newJobId } from "../jobs/job-id.js";
import { newJobRecord, toApiJob } from "../jobs/job.js";
import type { JobRunner } from "../jobs/runner.js";
import { cancelGroupRun } from "../groups/cancel.js";
import type { GroupConfig } from "../groups/config.js";
import { remoteMemberName, type GroupCoordinator } from "../groups/coordinator.js";
import { memberJobKey, newGroupRunId, newGroupRunRecord, toApiGroupRun, type GroupRunRecord } from "../groups/group-run.js";
import type { GroupLedger } from "../groups/ledger.js";
import type { GroupLeases } from "../groups/lease.js";
import type { Lease } from "../schedules/lease.js";
import { POLICIES, quiesceSettings } from "../jobs/policy.js";
import * as check from "./group-validate.js";
import { pageOf } from "./page-token.js";


export interface GroupServiceDeps {
  config: Readonly<AgentConfig>;
  guests: GuestDirectory;
  groupLedger: GroupLedger;
  coordinator: GroupCoordinator;
  runner: JobRunner;
  clock: Clock;
  log: Logger;
  isShuttingDown: () => boolean;
  /** The groups' pmxcfs leases (a run with members on other nodes takes its group's before anything exists). */
  leases?: GroupLeases | undefined;
}

export interface GroupHandlers {
  startGroupBackup(req: StartGroupBackupRequest): Promise<StartGroupBackupResponse>;
  getGroup(req: GetGroupRequest): GroupRun;
  listGroups(req: ListGroupsRequest): ListGroupsResponse;
  cancelGroup(req: CancelGroupRequest): Promise<CancelGroupResponse>;
}

function groupInfo(group: GroupConfig): GroupInfo {
  return {
    id: group.id,
    // Members on other nodes as a run names them (<guest>@<node>).
    guestIds: [...group.guests, ...(group.remote ?? []).map(remoteMemberName)].sort(),
    policy: group.policy ? POLICIES[group.policy] : QuiescePolicy.QUIESCE_POLICY_UNSPECIFIED,
    quiesceTimeoutMs: group.quiesceTimeoutMs ?? 0,
  };
}

/** The handlers' logic; the gRPC service wraps each one (validation errors become statuses there). */
export function createGroupHandlers(deps: GroupServiceDeps): GroupHandlers {
  const { config, guests, groupLedger, coordinator, runner, clock } = deps;
  const store = groupLedger.store;
  const groups: check.GroupDirectory = new Map(config.groups.map((g) => [g.id, g]));

  const api = (run: GroupRunRecord): GroupRun => toApiGroupRun(run, [...store.localMemberJobs(run.id).map(toApiJob), ...store.remoteMembers(run.id)]);
  const runOf = (id: string): GroupRunRecord => {
    const run = store.getRun(id);
    if (!run) throw new LullError("LULL_E_GROUP_NOT_FOUND", `no group run ${id}`);
    return run;
  };

  return {
    async startGroupBackup(req) {
      const r = check.startGroupBackupRequest(guests, groups, req);
      if (deps.isShuttingDown()) throw new LullError("LULL_E_SHUTTING_DOWN", "the agent is shutting down and takes no new backups");
      // Members on other nodes: this node coordinates only while it holds the group's lease. A run of
      // the group this node already follows holds it (a retry with the same key returns that run).
      let lease: Lease | undefined;
      if (r.remote.length > 0 && !coordinator.coordinates(r.groupId)) {
        if (!deps.leases) throw new LullError("LULL_E_CONFIG_INVALID", `group ${r.groupId} has members on other nodes, but this agent has no pmxcfs to take the group's lease in (schedules.clusterRoot)`);
        lease = await deps.leases(r.groupId);
        if (deps.isShuttingDown()) {
          await lease.release();
          throw new LullError("LULL_E_SHUTTING_DOWN", "the agent is shutting down and takes no new backups");
        }
      }
      try {
        return start(r, lease);
      } catch (err) {
        await lease?.release();
        throw err;
      }
    },

    getGroup(req) {
      return api(runOf(check.getGroupRequest(req).groupRunId));
    },

    listGroups(req) {
      const r = check.listGroupsRequest(guests, req);
      const configured = config.groups.filter((g) => r.guestId === undefined || g.guests.includes(r.guestId));
      const { page, next } = pageOf(store.listRuns({ ...r, limit: r.limit + 1 }), r.limit, (x) => ({ createdAt: x.createdAt?.getTime() ?? 0, id: x.id }));
      return { groups: page.map(api), configured: configured.map(groupInfo), nextPageToken: next };
    },

    async cancelGroup(req) {
      const r = check.cancelGroupRequest(req);
      return { group: api(await cancelGroupRun({ groupLedger, coordinator, runner, log: deps.log }, r.groupRunId, r.reason)) };
    },
  };

  /** Creates the run and its local member jobs in one transaction and starts them; `lease` goes to the coordinator with a new run. */
  function start(r: ReturnType<typeof check.startGroupBackupRequest>, lease: Lease | undefined): StartGroupBackupResponse {
    const now = clock.now();
    const id = newGroupRunId(now);
    const { policy, quiesceTimeoutMs } = quiesceSettings(config, r.group ?? {}, r);
    const run = newGroupRunRecord({
      id,
      groupId: r.groupId,
      guestIds: [...r.members.map((g) => g.id), ...r.remote.map(remoteMemberName)].sort(),
      policy,
      // Without a key a request is not retryable; the run id serves as its key.
      idempotencyKey: r.idempotencyKey ?? id,
      quiesceTimeoutMs,
      requestedBy: r.requestedBy,
      now,
    });
    const members = r.members.map((guest) =>
      newJobRecord({
        id: newJobId(now),
        guestId: guest.id,
        engine: guest.engine,
        policy,
        idempotencyKey: memberJobKey(id, guest.id),
        quiesceTimeoutMs,
        requestedBy: r.requestedBy,
        now,
        groupRunId: id,
      }),
    );
    const created = groupLedger.create(run, members);
    if (created.created) {
      coordinator.begin(created.run, created.members, r.remote, lease);
      for (const member of created.members) runner.start(member);
    } else if (lease) {
      void lease.release();
    }
    return { group: api(runOf(created.run.id)), created: created.created };
  }
}
