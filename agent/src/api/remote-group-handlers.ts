// JoinGroupRun and ReleaseGroupMember: this node's side of a group run coordinated on another
// node (groups/README.md, "Across nodes"). JoinGroupRun creates the member job of the other
// node's run for a guest of this node, runs it with a RemoteMembership (groups/remote-member.ts)
// and streams the member's steps to the caller; ReleaseGroupMember is the coordinator's word.
// A node may ask a guest of this node to join only a group this node's own config defines with that
// guest under `guests` and a member on the asking node under `remote` (the group is defined on every
// node that hosts a member): a node credential cannot back up any other guest of this node.
// Only the node that asked a member to join may release or fail it (a node principal; an operator
// may do both, e.g. a test or a recovery by hand).
import type { ServerWritableStream } from "@grpc/grpc-js";
import {
  EventKind,
  GroupMemberGo,
  GroupMemberStep,
  QuiescePolicy,
  type GroupMemberReport,
  type JoinGroupRunRequest,
  type Job,
  type ReleaseGroupMemberRequest,
  type ReleaseGroupMemberResponse,
} from "@lull/proto";
import { LIMITS, LullError, asLullError, isTerminal, toServiceError, validGroupRunId, validate, type Clock, type Logger } from "@lull/shared";
import type { Principal } from "../auth/principal.js";
import { snapshotKind, type AgentConfig } from "../config.js";
import type { EventBus } from "../events/bus.js";
import { groupEngineProblem, vzdumpPerNodeProblem } from "../groups/config.js";
import { memberJobKey } from "../groups/group-run.js";
import { RemoteMembership, type RemoteMemberships } from "../groups/remote-member.js";
import { newJobId } from "../jobs/job-id.js";
import { eventFor, newJobRecord, toApiJob } from "../jobs/job.js";
import type { JobLedger } from "../jobs/ledger.js";
import { quiesceSettings } from "../jobs/policy.js";
import type { JobRunner } from "../jobs/runner.js";
import { requireGuest, type GuestDirectory } from "./validate.js";

export interface RemoteGroupDeps {
  config: Readonly<AgentConfig>;
  guests: GuestDirectory;
  ledger: JobLedger;
  runner: JobRunner;
  bus: EventBus;
  clock: Clock;
  log: Logger;
  memberships: RemoteMemberships;
  isShuttingDown: () => boolean;
}

export interface RemoteGroupHandlers {
  joinGroupRun(call: ServerWritableStream<JoinGroupRunRequest, GroupMemberReport>, caller: Principal | undefined): void;
  releaseGroupMember(req: ReleaseGroupMemberRequest, caller: Principal | undefined): ReleaseGroupMemberResponse;
}

const DEFAULT_SLACK_MS = 5_000;
const DEFAULT_SNAPSHOT_TIMEOUT_MS = 600_000;

/** The name a member keeps of the node that asked it to join: the node, or `operator` for an operator's call. */
function askerOf(caller: Principal | undefined): string {
  if (!caller) throw new LullError("LULL_E_INTERNAL", "the call reached the handler without passing the guard");
  return caller.kind === "node" ? caller.node : caller.kind === "operator" ? "operator" : `guest-token ${caller.id}`;
}

function ranged(value: number, field: string, min: number, max: number, fallback: number): number {
  if (value === 0) return fallback;
  if (!Number.isInteger(value) || value < min || value > max) throw new LullError("LULL_E_INVALID_ARGUMENT", `${field} must be 0 (the default) or between ${min} and ${max}`);
  return value;
}

export function createRemoteGroupHandlers(deps: RemoteGroupDeps): RemoteGroupHandlers {
  const { config, guests, ledger, runner, bus, clock, memberships } = deps;
  const log = deps.log.child({ component: "group-member" });

  /** PERMISSION_DENIED unless this node's config has group `groupId` with `guestId` here and a member on node `asker`. */
  function checkDefinedHere(groupId: string, guestId: string, asker: string, groupRunId: string): void {
    const group = config.groups.find((g) => g.id === groupId);
    const fix = `define group ${groupId || "(none)"} on node ${config.node} too, with guest ${guestId} under guests and the members on node ${asker} under remote (groups/README.md, "Across nodes")`;
    const denied = (why: string) => new LullError("LULL_E_PERMISSION_DENIED", `node ${asker} asked guest ${guestId} to join group run ${groupRunId}, but ${why}: ${fix}`);
    if (!group) throw denied(`this node's config has no group ${groupId || "(the request names none)"}`);
    if (!group.guests.includes(guestId)) throw denied(`group ${groupId} on this node does not list guest ${guestId} under guests`);
    if (!(group.remote ?? []).some((m) => m.node === asker)) throw denied(`group ${groupId} on this node names no member on node ${asker}`);
  }

  function join(call: ServerWritableStream<JoinGroupRunRequest, GroupMemberReport>, caller: Principal | undefined): void {
    const req = call.request;
    const coordinator = askerOf(caller);
    const groupRunId = validGroupRunId(req.groupRunId);
    const guest = requireGuest(guests, req.guestId);
    if (caller?.kind === "node") checkDefinedHere(req.groupId, guest.id, caller.node, groupRunId);
    const problem = groupEngineProblem(guest.id, guest.engine);
    if (problem) throw new LullError("LULL_E_GROUP_UNSUPPORTED", `${problem}; it cannot join group run ${groupRunId} of node ${coordinator}`);
    if (guest.engine === "vzdump") {
      // At most one vzdump member of a run per node (vzdump's global lock): another one already joined here?
      const others = [...memberships.jobIds(groupRunId)].map((id) => ledger.store.getJob(id)).filter((j) => j !== undefined && j.engine === "vzdump" && j.guestId !== guest.id);
      const perNode = vzdumpPerNodeProblem([...others.map((j) => j!.guestId), guest.id], `node ${config.node}`);
      if (perNode) throw new LullError("LULL_E_GROUP_UNSUPPORTED", `${perNode}; it cannot join group run ${groupRunId} of node ${coordinator}`);
    }
    if (deps.isShuttingDown()) throw new LullError("LULL_E_SHUTTING_DOWN", "the agent is shutting down and takes no new backups");
    const requestedBy = validate.text(req.requestedBy, "requested_by", LIMITS.requestedBy);
    const quiesceTimeoutMs = ranged(req.quiesceTimeoutMs, "quiesce_timeout_ms", 100, 3_600_000, config.quiesce.timeoutMs);
    const slackMs = ranged(req.barrierSlackMs, "barrier_slack_ms", 100, 600_000, DEFAULT_SLACK_MS);
    const snapshotTimeoutMs = ranged(req.snapshotTimeoutMs, "snapshot_timeout_ms", 1_000, 3_600_000, DEFAULT_SNAPSHOT_TIMEOUT_MS);
    const policy = req.policy === QuiescePolicy.QUIESCE_POLICY_UNSPECIFIED ? undefined : req.policy;
    const now = clock.now();
    const record = newJobRecord({
      id: newJobId(now),
      guestId: guest.id,
      engine: guest.engine,
      ...quiesceSettings(config, {}, { policy, quiesceTimeoutMs }),
      idempotencyKey: memberJobKey(groupRunId, guest.id),
      requestedBy: `${requestedBy || "group"} (group run ${groupRunId} of node ${coordinator})`.slice(0, LIMITS.requestedBy),
      now,
      groupRunId,
    });
    const { job, created } = ledger.create(record, eventFor(record, EventKind.EVENT_KIND_PHASE));
    if (!created) throw new LullError("LULL_E_GUEST_BUSY", `guest ${guest.id} already joined group run ${groupRunId} (job ${job.id}); a member joins once`);

    let ended = false;
    const current = (): Job => toApiJob(ledger.store.getJob(job.id) ?? job);
    const send = (report: Partial<Omit<GroupMemberReport, "job">> & Pick<GroupMemberReport, "step">) => {
      if (ended || call.cancelled || call.writableEnded) return;
      call.write({ consistency: 0, makesCopy: false, snapshotAt: undefined, ...report, job: current() });
    };
    const membership = new RemoteMembership({
      groupRunId,
      guestId: guest.id,
      coordinator,
      makesCopy: snapshotKind(guest) !== "none",
      clock,
      log,
      holdMs: quiesceTimeoutMs + slackMs,
      snapshotTimeoutMs,
      report: (r) => send({ step: r.step, consistency: r.consistency ?? 0, snapshotAt: r.snapshotAt === undefined ? undefined : new Date(r.snapshotAt) }),
    });
    memberships.add(job.id, membership);
    const finish = () => {
      if (ended) return;
      send({ step: GroupMemberStep.GROUP_MEMBER_STEP_ENDED });
      ended = true;
      unsubscribe();
      memberships.remove(job.id);
      if (!call.cancelled && !call.writableEnded) call.end();
    };
    const unsubscribe = bus.subscribe({ jobId: job.id }, () => {
      const now = ledger.store.getJob(job.id);
      if (now && isTerminal(now.phase)) finish();
      else send({ step: GroupMemberStep.GROUP_MEMBER_STEP_PROGRESS });
    });
    call.on("cancelled", () => {
      log.warn({ groupRunId, guestId: guest.id, coordinator, pastPoint: membership.pastPoint }, "the coordinating node's stream closed");
      membership.coordinatorGone("its JoinGroupRun stream closed");
    });
    log.info({ groupRunId, guestId: guest.id, jobId: job.id, coordinator }, "joined a group run of another node");
    send({ step: GroupMemberStep.GROUP_MEMBER_STEP_JOINED, makesCopy: snapshotKind(guest) !== "none" });
    runner.start(job);
  }

  return {
    joinGroupRun(call, caller) {
      try {
        join(call, caller);
      } catch (err) {
        const e = asLullError(err);
        log.info({ method: "JoinGroupRun", code: e.code, err: e.message }, "call failed");
        if (!call.cancelled) call.emit("error", toServiceError(e));
      }
    },

    releaseGroupMember(req, caller) {
      const groupRunId = validGroupRunId(req.groupRunId);
      const guestId = validate.guestId(req.guestId);
      const found = memberships.find(groupRunId, guestId);
      if (!found) throw new LullError("LULL_E_GROUP_NOT_FOUND", `this node runs no member ${guestId} of group run ${groupRunId} (it never joined, or it has ended)`);
      const asker = askerOf(caller);
      if (caller?.kind !== "operator" && asker !== found.membership.coordinator) {
        throw new LullError("LULL_E_PERMISSION_DENIED", `${asker} did not ask guest ${guestId} to join group run ${groupRunId} (node ${found.membership.coordinator} did): only that node may release it`);
      }
      const message = validate.text(req.errorMessage, "error_message", LIMITS.reason);
      if (req.go === GroupMemberGo.GROUP_MEMBER_GO_CANCEL) {
        // Cancelled as CancelJob cancels a job here (before or after the point): it ends `cancelled`, its stacks run again.
        const job = ledger.store.getJob(found.jobId);
        if (!job || isTerminal(job.phase)) return { accepted: false };
        const reason = message || `group run ${groupRunId} cancelled by node ${asker}`;
        found.membership.cancelled(reason);
        log.info({ groupRunId, guestId, jobId: found.jobId, coordinator: asker, reason }, "member cancelled by its coordinator");
        runner.cancel(found.jobId, reason).catch((err: unknown) => {
          const e = asLullError(err);
          log.warn({ groupRunId, jobId: found.jobId, code: e.code, err: e.message }, "member not cancelled");
        });
        return { accepted: true };
      }
      const accepted = found.membership.release(req.go, validate.text(req.errorCode, "error_code", 64), message);
      return { accepted };
    },
  };
}
