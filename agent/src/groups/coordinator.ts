// The group coordinator: one barrier and one snapshot point across the member jobs of a group run.
// It implements the jobs' membership port (jobs/membership.ts): the runner gives each member's hooks a GroupMembership:
//   - after its own quiesce barrier ended, a member waits until every member's has (the group
//     barrier; a member without a point-in-time copy waits for the snapshot point instead);
//   - after its copy exists, a member waits until every member's does (the snapshot point), and
//     only then commits `snapshotted`, so no stack resumes before the last snapshot is taken.
// A member that ends before the snapshot point (refused under the fail policy, timed out, snapshot
// failed, cancelled) fails the group: the cause is committed, then the membership signal aborts
// every other member with LULL_E_GROUP_MEMBER_FAILED; their engines release what they took, their
// jobs end failed, and every controller resumes its stack. After the point members go on alone.
// An operator's cancel (CancelGroup, see cancel.ts) is recorded here first; before the snapshot
// point it also closes the barrier and the point (no member goes on to snapshot or to
// `snapshotted`), while the caller cancels each member job through the runner.
// The run's outcome is settled from the member jobs once all ended. Member jobs' committed events
// only say "look again" (reconcile reads the store), never re-entering the bus that delivered them.
// Members on other nodes (README.md, "Across nodes") take part through a link (linkRemote): the
// member's node runs its job (JoinGroupRun) and reports its steps, which enter the same barrier
// and point as a local member's; the coordinator's word goes back with ReleaseGroupMember. The
// member job as last reported is kept in `group_remote_members`, so reconcile, the outcome and
// recovery read remote members from the store as they read local ones. Such a run holds the
// group's pmxcfs lease (lease.ts) until it is forgotten: a lease lost before the snapshot point
// fails the run, and the lease is checked before the barrier and the point are committed.
import { Consistency, EventKind, GroupMemberGo, GroupMemberStep, Job, Phase, StackState, type GroupMemberReport } from "@lull/proto";
import { LullError, callUnary, fromServiceError, isTerminal, phaseName, type ClusterPeers, type Clock, type Logger } from "@lull/shared";
import type { EventBus } from "../events/bus.js";
import type { JobRecord } from "../jobs/job.js";
import type { GroupMembership, GroupMemberships } from "../jobs/membership.js";
import { Deferred } from "./deferred.js";
import type { GroupRunRecord } from "./group-run.js";
import type { GroupLedger } from "./ledger.js";
import type { Lease } from "../schedules/lease.js";
import type { GroupEvent } from "./machine.js";
import { MEMBER_FAILED_CODE, groupOutcome, quote, rootCause } from "./outcome.js";
import { openRemoteMembers, settleGroupRun } from "./recovery.js";

export interface GroupCoordinatorDeps {
  ledger: GroupLedger;
  bus: EventBus;
  clock: Clock;
  log: Logger;
  /** Whether a member guest makes a point-in-time copy (false: archived in place while stopped). */
  makesCopy: (guestId: string) => boolean;
  /** Past the quiesce timeout, how long the group still waits for a member that never ended its own barrier. Default 5 s. */
  barrierSlackMs?: number;
  /** Longest time from the group barrier to the snapshot point. Default 10 min. */
  snapshotTimeoutMs?: number;
  /** The other nodes' agents (members on other nodes); undefined while the cluster part is off. */
  peers?: () => ClusterPeers | undefined;
  /** After the point, a remote member whose stream broke is read with GetJob this often (default 2 s)… */
  remoteFollowEveryMs?: number;
  /** …until its node did not answer for this long in a row (default 60 s): then it is lost. */
  remoteFollowGiveUpMs?: number;
}

/** A member guest on another node of the cluster. */
export interface RemoteMemberSpec {
  guest: string;
  node: string;
}

/** How a run names a member on another node: `<guest>@<node>` (no local guest id contains `@`). */
export const remoteMemberName = (m: RemoteMemberSpec) => `${m.guest}@${m.node}`;

/** The inverse of remoteMemberName; undefined for a local guest id. */
export function parseRemoteMemberName(name: string): RemoteMemberSpec | undefined {
  const at = name.indexOf("@");
  return at > 0 ? { guest: name.slice(0, at), node: name.slice(at + 1) } : undefined;
}

export const MEMBER_LOST_CODE = "LULL_E_GROUP_MEMBER_LOST";

interface Member {
  jobId: string;
  guestId: string;
  makesCopy: boolean;
  consistency?: Consistency;
  snapshotAt?: number;
  /** A member on another node, and how to give it the coordinator's word (once linked). */
  remote?: RemoteMemberSpec;
  tell?: (go: GroupMemberGo, code?: string, message?: string) => void;
}

interface ActiveGroup {
  id: string;
  /** The configured group it is a run of ("" for an ad hoc group). */
  groupId: string;
  members: Map<string, Member>;
  abort: AbortController;
  failure?: LullError;
  barrier: Deferred;
  point: Deferred;
  timers: AbortController;
  unsubscribe: () => void;
  reconcileQueued: boolean;
  /** Aborted when the coordinator forgets the run: closes the remote members' streams. */
  links: AbortController;
  /** The group's pmxcfs lease (a run with members on other nodes), released when the run is forgotten. */
  lease?: Lease;
}

/** `member 102 (job j-…) failed in quiescing: LULL_E_QUIESCE_REFUSED: …` */
function causeOf(m: Job): string {
  const how = m.phase === Phase.PHASE_CANCELLED ? "was cancelled" : "failed";
  const where = m.failedIn === Phase.PHASE_UNSPECIFIED ? "" : ` in ${phaseName(m.failedIn)}`;
  const text = quote(m.errorMessage);
  return `member ${m.guestId} (job ${m.id}) ${how}${where}: ${m.errorCode || "no code"}${text ? `: ${text}` : ""}`;
}

export class GroupCoordinator implements GroupMemberships {
  private readonly active = new Map<string, ActiveGroup>();
  private readonly byJob = new Map<string, ActiveGroup>();
  private readonly barrierSlackMs: number;
  private readonly snapshotTimeoutMs: number;
  /** Aborted by close(): stops following interrupted runs' remote members. */
  private readonly followers = new AbortController();

  constructor(private readonly deps: GroupCoordinatorDeps) {
    this.barrierSlackMs = deps.barrierSlackMs ?? 5_000;
    this.snapshotTimeoutMs = deps.snapshotTimeoutMs ?? 600_000;
  }

  get activeCount(): number {
    return this.active.size;
  }

  /** Takes charge of a run just created (queued, members queued): call before starting the member runs. */
  begin(run: GroupRunRecord, members: readonly JobRecord[], remote: readonly RemoteMemberSpec[] = [], lease?: Lease): void {
    const remoteMembers: Member[] = remote.map((spec) => ({ jobId: `remote ${remoteMemberName(spec)}`, guestId: remoteMemberName(spec), makesCopy: true, remote: spec }));
    const group: ActiveGroup = {
      id: run.id,
      groupId: run.groupId,
      members: new Map([
        ...members.map((m): [string, Member] => [m.id, { jobId: m.id, guestId: m.guestId, makesCopy: this.deps.makesCopy(m.guestId) }]),
        ...remoteMembers.map((m): [string, Member] => [m.jobId, m]),
      ]),
      abort: new AbortController(),
      barrier: new Deferred(),
      point: new Deferred(),
      timers: new AbortController(),
      unsubscribe: () => {},
      reconcileQueued: false,
      links: new AbortController(),
      ...(lease ? { lease } : {}),
    };
    // Until its node reports, a remote member is a queued job of the run (the run cannot end without it).
    for (const m of remoteMembers) {
      this.deps.ledger.store.putRemoteMember(run.id, Job.fromPartial({ guestId: m.guestId, groupRunId: run.id, phase: Phase.PHASE_QUEUED, engine: "native", policy: run.policy }), this.deps.clock.now());
    }
    this.active.set(run.id, group);
    for (const m of members) this.byJob.set(m.id, group);
    group.unsubscribe = this.deps.bus.subscribe({ groupRunId: run.id }, (event) => {
      const resumed = event.kind === EventKind.EVENT_KIND_STACK && event.stackState === StackState.STACK_STATE_RESUMED;
      if (event.kind === EventKind.EVENT_KIND_PHASE || resumed) this.schedule(group);
    });
    this.commit(group, { type: "start" });
    if (lease) {
      const lost = () => {
        if (group.point.settled && !group.failure) {
          this.deps.log.warn({ groupRunId: run.id, lease: lease.id, err: lease.lostReason }, "the group's lease was lost after the snapshot point; the members go on alone");
          return;
        }
        this.fail(group, "LULL_E_GROUP_LEASE_LOST", `this node lost the group's pmxcfs lease ${lease.id} (${lease.lostReason}); it stopped coordinating the run`);
      };
      if (lease.signal.aborted) lost();
      else lease.signal.addEventListener("abort", lost, { once: true });
    }
    for (const m of remoteMembers) void this.linkRemote(group, m, run);
    const limit = run.quiesceTimeoutMs + this.barrierSlackMs;
    this.after(group, limit, () => {
      if (group.barrier.settled) return;
      const waiting = [...group.members.values()].filter((m) => m.consistency === undefined).map((m) => m.guestId);
      this.fail(group, "LULL_E_QUIESCE_TIMEOUT", `not every member ended its quiesce barrier within ${limit} ms: ${waiting.join(", ")}`);
    });
  }

  /** Whether this coordinator follows a run of configured group `groupId` now (it holds the group's lease, if the group has one). */
  coordinates(groupId: string): boolean {
    for (const group of this.active.values()) if (groupId !== "" && group.groupId === groupId) return true;
    return false;
  }

  /** The membership of a job that belongs to a running group, if it does. */
  membershipOf(jobId: string): GroupMembership | undefined {
    const group = this.byJob.get(jobId);
    const member = group?.members.get(jobId);
    if (!group || !member) return undefined;
    return {
      groupRunId: group.id,
      signal: group.abort.signal,
      get failure() {
        return group.failure;
      },
      barrierEnded: (consistency, signal) => this.barrierEnded(group, member, consistency, signal),
      snapshotTaken: (snapshotAt, signal) => this.snapshotTaken(group, member, snapshotAt, signal),
    };
  }

  /**
   * Records an operator's cancel of a run that has not ended (throws LULL_E_JOB_TERMINAL when it
   * has). Before the snapshot point the run then goes no further: no member passes the barrier or
   * commits `snapshotted`. The caller cancels the member jobs (JobRunner.cancel), then calls settle().
   */
  cancel(runId: string, reason: string, memberReason: string): void {
    this.deps.ledger.apply(runId, { type: "cancel", reason });
    const group = this.active.get(runId);
    if (!group) return;
    // Members on other nodes are cancelled on their node, before or after the point, as CancelJob cancels a job there.
    const open = new Set(this.deps.ledger.store.remoteMembers(runId).filter((j) => !isTerminal(j.phase)).map((j) => j.guestId));
    for (const m of group.members.values()) if (open.has(m.guestId)) m.tell?.(GroupMemberGo.GROUP_MEMBER_GO_CANCEL, "LULL_E_CANCELLED", memberReason);
    if (group.failure || group.point.settled) return;
    group.failure = new LullError("LULL_E_CANCELLED", `group run ${runId} was cancelled before every snapshot existed: ${reason}`);
    this.deps.log.info({ groupRunId: runId, reason }, "group run cancelled before its snapshot point");
    group.barrier.reject(group.failure);
    group.point.reject(group.failure);
  }

  /** Waits until every member of `runId` on another node has ended (as last reported), at most `ms`. */
  async remoteMembersEnded(runId: string, ms: number): Promise<void> {
    const deadline = this.deps.clock.now() + ms;
    const open = () => this.deps.ledger.store.remoteMembers(runId).some((j) => !isTerminal(j.phase));
    while (open() && this.active.has(runId) && this.deps.clock.now() < deadline) await this.deps.clock.sleep(50).catch(() => undefined);
  }

  /** Ends the run now if every member has ended (also a run this coordinator does not follow); returns it as it is then. */
  settle(runId: string): GroupRunRecord | undefined {
    const group = this.active.get(runId);
    if (group) {
      this.reconcile(group);
    } else {
      const run = this.deps.ledger.store.getRun(runId);
      const members = this.deps.ledger.store.memberJobs(runId);
      if (run && !isTerminal(run.phase) && members.every((m) => isTerminal(m.phase))) this.deps.ledger.apply(runId, groupOutcome(run, members));
    }
    return this.deps.ledger.store.getRun(runId);
  }

  /** Stops timers and subscriptions (agent shutdown); runs left unsettled are settled at the next start. */
  close(): void {
    this.followers.abort();
    for (const group of [...this.active.values()]) this.forget(group);
  }

  private async barrierEnded(group: ActiveGroup, member: Member, consistency: Consistency, signal: AbortSignal): Promise<void> {
    if (group.failure) throw group.failure;
    member.consistency = consistency;
    this.checkBarrier(group);
    await (member.makesCopy ? group.barrier : group.point).wait(signal);
  }

  private async snapshotTaken(group: ActiveGroup, member: Member, snapshotAt: number, signal: AbortSignal): Promise<void> {
    if (group.failure) throw group.failure;
    member.snapshotAt = snapshotAt;
    this.checkPoint(group);
    await group.point.wait(signal);
  }

  private checkBarrier(group: ActiveGroup): void {
    const members = [...group.members.values()];
    if (group.barrier.settled || members.some((m) => m.consistency === undefined)) return;
    if (!this.leaseValid(group)) return;
    const crash = members.some((m) => m.consistency !== Consistency.CONSISTENCY_APP);
    const consistency = crash ? Consistency.CONSISTENCY_CRASH : Consistency.CONSISTENCY_APP;
    if (!this.commit(group, { type: "barrier-passed", consistency, at: this.deps.clock.now() })) return;
    group.barrier.resolve();
    this.after(group, this.snapshotTimeoutMs, () => {
      if (group.point.settled) return;
      const waiting = members.filter((m) => m.makesCopy && m.snapshotAt === undefined).map((m) => m.guestId);
      this.fail(group, "LULL_E_SNAPSHOT_FAILED", `not every member's snapshot existed within ${this.snapshotTimeoutMs} ms: ${waiting.join(", ")}`);
    });
    this.checkPoint(group);
  }

  private checkPoint(group: ActiveGroup): void {
    if (group.point.settled || !group.barrier.settled || group.failure) return;
    const copies = [...group.members.values()].filter((m) => m.makesCopy);
    if (copies.some((m) => m.snapshotAt === undefined)) return;
    if (!this.leaseValid(group)) return;
    const times = copies.map((m) => m.snapshotAt as number);
    const snapshotAt = times.length > 0 ? Math.min(...times) : undefined;
    // Durable before the side effect: the run is `snapshotted` before any member commits it (and stacks resume).
    if (copies.length > 0 && !this.commit(group, { type: "snapshot-point", snapshotAt, skew: skewOf(copies) })) return;
    group.point.resolve();
  }

  /** Fails the group before its snapshot point: commits the cause, then stops every member. */
  private fail(group: ActiveGroup, code: string, message: string): void {
    if (group.failure || group.point.settled) return;
    this.commit(group, { type: "failing", code, message });
    group.failure = new LullError(MEMBER_FAILED_CODE, `group run ${group.id} failed before every snapshot existed: ${message}`);
    this.deps.log.warn({ groupRunId: group.id, cause: code, err: message }, "group run failing; stopping every member");
    group.barrier.reject(group.failure);
    group.point.reject(group.failure);
    group.abort.abort(group.failure);
    this.tellRemotes(group, GroupMemberGo.GROUP_MEMBER_GO_FAIL, group.failure);
  }

  /** A run under a lease commits its barrier and its point only while the lease is valid (the holder fences itself). */
  private leaseValid(group: ActiveGroup): boolean {
    if (!group.lease || group.lease.valid()) return true;
    this.fail(group, "LULL_E_GROUP_LEASE_LOST", `this node's pmxcfs lease ${group.lease.id} is no longer valid (${group.lease.lostReason}); it stopped coordinating the run`);
    return false;
  }

  private tellRemotes(group: ActiveGroup, go: GroupMemberGo, failure?: LullError): void {
    for (const m of group.members.values()) m.tell?.(go, failure?.code, failure?.message);
  }

  /** Runs a member on its node (JoinGroupRun) and feeds its steps into the barrier and the point until its job ended or its node is gone. */
  private async linkRemote(group: ActiveGroup, member: Member, run: GroupRunRecord): Promise<void> {
    const spec = member.remote as RemoteMemberSpec;
    const log = this.deps.log.child({ groupRunId: group.id, member: member.guestId });
    let why = "";
    try {
      const peers = this.deps.peers?.();
      if (!peers) throw new LullError("LULL_E_CONFIG_INVALID", "the cluster listener is off (cluster.enabled), so members on other nodes cannot be reached");
      const api = await peers.clientFor(spec.node);
      member.tell = (go, code = "", message = "") => {
        const request = { groupRunId: group.id, guestId: spec.guest, go, errorCode: code, errorMessage: message.slice(0, 1024) };
        callUnary(api.raw.releaseGroupMember.bind(api.raw), request, { timeoutMs: 5_000 }).catch((err: unknown) => {
          const e = fromServiceError(err);
          log.warn({ go, code: e.code, err: e.message }, "the member's node did not take the coordinator's word");
          // Before the point a member that cannot be told is lost: stop following it now rather than at the stream's keepalive.
          if (!group.point.settled && e.code === "LULL_E_AGENT_UNREACHABLE") {
            why = `its node did not take the coordinator's word: ${e.code}: ${e.message}`;
            drop?.();
          }
        });
      };
      let drop: (() => void) | undefined;
      const call = api.raw.joinGroupRun({
        groupRunId: group.id,
        groupId: run.groupId,
        guestId: spec.guest,
        policy: run.policy,
        quiesceTimeoutMs: run.quiesceTimeoutMs,
        requestedBy: run.requestedBy,
        barrierSlackMs: this.barrierSlackMs,
        snapshotTimeoutMs: this.snapshotTimeoutMs,
      });
      const cancel = () => call.cancel();
      drop = cancel;
      group.links.signal.addEventListener("abort", cancel, { once: true });
      try {
        for await (const report of call as AsyncIterable<GroupMemberReport>) this.onRemoteReport(group, member, report);
      } finally {
        group.links.signal.removeEventListener("abort", cancel);
      }
    } catch (err) {
      const e = fromServiceError(err);
      if (why === "") why = `${e.code}: ${e.message}`;
    }
    if (group.links.signal.aborted) return;
    let last = this.deps.ledger.store.remoteMembers(group.id).find((j) => j.guestId === member.guestId);
    // After the point a broken stream (a blip, a restarted link) is not a lost member: its node is asked for the job until it ended.
    if (last && !isTerminal(last.phase) && last.id !== "" && group.point.settled && !group.failure) {
      const followed = await this.followRemoteJob(group.id, member.guestId, spec, last.id, group.links.signal, log, () => this.schedule(group), "the member's stream broke after the snapshot point; following its job on its node");
      if (followed.job) last = followed.job;
      if (followed.why) why = followed.why;
      if (group.links.signal.aborted) return;
    }
    if (!last || !isTerminal(last.phase)) this.recordLost(group.id, member.guestId, spec, last, group.point.settled && !group.failure, why, log);
    this.schedule(group);
  }

  /**
   * Reads a remote member's job on its node (GetJob, open to node credentials) every `remoteFollowEveryMs`
   * until it ended; gives up once its node did not answer for `remoteFollowGiveUpMs` in a row.
   */
  private async followRemoteJob(runId: string, name: string, spec: RemoteMemberSpec, jobId: string, signal: AbortSignal, log: Logger, changed: () => void, why0: string): Promise<{ job?: Job; why?: string }> {
    const every = this.deps.remoteFollowEveryMs ?? 2_000;
    const giveUp = this.deps.remoteFollowGiveUpMs ?? 60_000;
    log.info({ node: spec.node, jobId, member: name }, why0);
    let answeredAt = this.deps.clock.now();
    let why = "";
    let job: Job | undefined;
    while (!signal.aborted) {
      try {
        const peers = this.deps.peers?.();
        if (!peers) throw new LullError("LULL_E_CONFIG_INVALID", "the cluster listener is off (cluster.enabled)");
        const api = await peers.clientFor(spec.node);
        job = { ...(await callUnary(api.raw.getJob.bind(api.raw), { jobId, guestId: spec.guest }, { timeoutMs: 5_000 })), guestId: name, groupRunId: runId };
        answeredAt = this.deps.clock.now();
        this.deps.ledger.store.putRemoteMember(runId, job, answeredAt);
        changed();
        if (isTerminal(job.phase)) return { job };
      } catch (err) {
        const e = fromServiceError(err);
        why = `GetJob ${jobId} on node ${spec.node}: ${e.code}: ${e.message}`;
        if (this.deps.clock.now() - answeredAt >= giveUp) return { why: `${why} (no answer for ${giveUp} ms)` };
      }
      await this.deps.clock.sleep(every, signal).catch(() => undefined);
    }
    return job ? { job } : {};
  }

  /**
   * A run the agent's stop interrupted past its snapshot point (recovery.ts left it open): follows
   * its members on other nodes with GetJob until each ended (or its node stopped answering), then
   * settles the run from its members as recovery does. Stopped by close().
   */
  async followInterrupted(runId: string): Promise<void> {
    const log = this.deps.log.child({ groupRunId: runId });
    const signal = this.followers.signal;
    await Promise.all(
      openRemoteMembers(this.deps.ledger, runId).map(async (m) => {
        const spec = parseRemoteMemberName(m.guestId);
        if (!spec) return;
        const followed = await this.followRemoteJob(runId, m.guestId, spec, m.id, signal, log, () => undefined, "following a member of a run interrupted past its point on its node");
        if (!signal.aborted && !(followed.job && isTerminal(followed.job.phase))) this.recordLost(runId, m.guestId, spec, followed.job ?? m, true, followed.why ?? "", log);
      }),
    );
    if (signal.aborted) return;
    try {
      settleGroupRun(this.deps.ledger, runId, log);
    } catch (err) {
      log.error({ err }, "could not settle an interrupted group run after following its members");
    }
  }

  /** Records a member on another node as lost (its node stopped answering), before or after the point. */
  private recordLost(runId: string, name: string, spec: RemoteMemberSpec, last: Job | undefined, past: boolean, why: string, log: Logger): void {
    const lost: Job = {
      ...(last ?? Job.fromPartial({ guestId: name, groupRunId: runId })),
      phase: Phase.PHASE_FAILED,
      failedIn: last?.phase ?? Phase.PHASE_QUEUED,
      errorCode: MEMBER_LOST_CODE,
      errorMessage: past
        ? `node ${spec.node} stopped answering after the snapshot point${why ? ` (${why})` : ""}: the member goes on alone there and its restore point may exist on node ${spec.node}; this run could not follow it to its end`
        : `node ${spec.node} stopped answering before the snapshot point${why ? ` (${why})` : ""}: the member's stacks run again by its own deadline`,
      finishedAt: new Date(this.deps.clock.now()),
    };
    log.warn({ node: spec.node, pastPoint: past, err: why }, "a member on another node is lost");
    this.deps.ledger.store.putRemoteMember(runId, lost, this.deps.clock.now());
  }

  private onRemoteReport(group: ActiveGroup, member: Member, report: GroupMemberReport): void {
    if (report.job) this.deps.ledger.store.putRemoteMember(group.id, { ...report.job, guestId: member.guestId, groupRunId: group.id }, this.deps.clock.now());
    const signal = group.links.signal;
    const onFailure = (err: unknown) => {
      const e = group.failure ?? (err instanceof LullError ? err : new LullError(MEMBER_FAILED_CODE, `group run ${group.id} stopped`));
      // A cancelled run told its members CANCEL already: their jobs end cancelled, not failed.
      if (e.code !== "LULL_E_CANCELLED") member.tell?.(GroupMemberGo.GROUP_MEMBER_GO_FAIL, e.code, e.message);
    };
    switch (report.step) {
      case GroupMemberStep.GROUP_MEMBER_STEP_JOINED:
        member.makesCopy = report.makesCopy;
        break;
      case GroupMemberStep.GROUP_MEMBER_STEP_BARRIER_ENDED:
        // A member without a copy waits for the point at its barrier: its word is POINT.
        this.barrierEnded(group, member, report.consistency, signal).then(
          () => member.tell?.(member.makesCopy ? GroupMemberGo.GROUP_MEMBER_GO_BARRIER : GroupMemberGo.GROUP_MEMBER_GO_POINT),
          onFailure,
        );
        break;
      case GroupMemberStep.GROUP_MEMBER_STEP_SNAPSHOT_TAKEN:
        this.snapshotTaken(group, member, report.snapshotAt?.getTime() ?? this.deps.clock.now(), signal).then(() => member.tell?.(GroupMemberGo.GROUP_MEMBER_GO_POINT), onFailure);
        break;
      default:
        break;
    }
    this.schedule(group);
  }

  private schedule(group: ActiveGroup): void {
    if (group.reconcileQueued) return;
    group.reconcileQueued = true;
    queueMicrotask(() => {
      group.reconcileQueued = false;
      try {
        this.reconcile(group);
      } catch (err) {
        this.deps.log.error({ groupRunId: group.id, err }, "group reconcile failed");
      }
    });
  }

  /** Reads the run and its members from the store and moves the run along. */
  private reconcile(group: ActiveGroup): void {
    const store = this.deps.ledger.store;
    let run = store.getRun(group.id);
    if (!run || isTerminal(run.phase)) return this.forget(group);
    const members = store.memberJobs(group.id);
    const cause = rootCause(members);
    if (cause && !group.point.settled) {
      this.fail(group, cause.errorCode || "LULL_E_INTERNAL", causeOf(cause));
    }
    // A stack running again before the point (its controller's deadline passed): the group cannot be consistent.
    const early = group.point.settled ? undefined : resumedEarly(members);
    if (early) {
      this.fail(group, "LULL_E_RESUMED_BEFORE_SNAPSHOT", `stack ${early.stack} of member ${early.guestId} ran again before every member's snapshot existed (its controller stopped waiting)`);
    }
    const archiving = members.some((m) => m.phase === Phase.PHASE_ARCHIVING || m.phase === Phase.PHASE_DONE || m.failedIn === Phase.PHASE_ARCHIVING);
    const pastPoint = run.phase === Phase.PHASE_SNAPSHOTTED || (run.phase === Phase.PHASE_SNAPSHOTTING && group.point.settled && !group.failure);
    if (archiving && pastPoint) run = this.deps.ledger.apply(group.id, { type: "archiving" });
    if (members.every((m) => isTerminal(m.phase))) {
      this.commit(group, groupOutcome(run, members));
      this.forget(group);
    }
  }

  private forget(group: ActiveGroup): void {
    group.unsubscribe();
    group.links.abort();
    group.timers.abort();
    const ended = group.failure ?? new LullError(MEMBER_FAILED_CODE, `group run ${group.id} is no longer coordinated`);
    group.barrier.reject(ended);
    group.point.reject(ended);
    if (group.lease) {
      const lease = group.lease;
      void lease.release().then((how) => this.deps.log.info({ groupRunId: group.id, lease: lease.id, how }, "group lease given back"));
    }
    this.active.delete(group.id);
    for (const jobId of group.members.keys()) this.byJob.delete(jobId);
  }

  /** Commits a group event; a failure to commit fails the group (before its point) and is logged. */
  private commit(group: ActiveGroup, event: GroupEvent): boolean {
    try {
      this.deps.ledger.apply(group.id, event);
      return true;
    } catch (err) {
      const e = err instanceof LullError ? err : new LullError("LULL_E_INTERNAL", String(err), { cause: err });
      this.deps.log.error({ groupRunId: group.id, event: event.type, code: e.code, err: e.message }, "group run change not recorded");
      if (event.type !== "failing" && event.type !== "end") this.fail(group, e.code, `recording ${event.type}: ${e.message}`);
      return false;
    }
  }

  private after(group: ActiveGroup, ms: number, fire: () => void): void {
    this.deps.clock.sleep(ms, group.timers.signal).then(
      () => {
        if (this.active.get(group.id) === group) fire();
      },
      () => {},
    );
  }
}

/** `members' snapshots span 412 ms (first 101 at …, last 201@pve2 at …)`: the skew of the group's copies. */
function skewOf(copies: readonly Member[]): string {
  const sorted = [...copies].sort((a, b) => (a.snapshotAt as number) - (b.snapshotAt as number));
  const first = sorted[0];
  const last = sorted.at(-1);
  if (!first || !last) return "";
  const at = (m: Member) => `${m.guestId} at ${new Date(m.snapshotAt as number).toISOString()}`;
  return `members' snapshots span ${(last.snapshotAt as number) - (first.snapshotAt as number)} ms (skew; first ${at(first)}, last ${at(last)})`;
}

/** A stack of a member that has not ended and that already runs again, if any. */
function resumedEarly(members: readonly Job[]): { guestId: string; stack: string } | undefined {
  for (const m of members) {
    if (isTerminal(m.phase)) continue;
    const s = m.stacks.find((x) => x.state === StackState.STACK_STATE_RESUMED);
    if (s) return { guestId: m.guestId, stack: s.stack };
  }
  return undefined;
}
