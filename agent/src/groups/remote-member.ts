// The member side of a group run coordinated on another node (README.md, "Across nodes"): this
// node runs one member job of the other node's run, and its run sees a GroupMembership that
// reports each step to the coordinator (the JoinGroupRun stream) and waits for its word
// (ReleaseGroupMember). The member never waits longer than its own deadlines: its barrier and
// its copy wait at most until `holdMs` after it joined (the group's quiesce timeout plus slack),
// the snapshot point at most `snapshotTimeoutMs` after the barrier. Before the point, the
// coordinator's stream closing, a FAIL or a deadline stop the member (LULL_E_GROUP_COORDINATOR_LOST
// or the FAIL's code): its engine releases its copy, its job ends failed, its controllers start
// its stacks. After the point the member archives on its own, whatever becomes of the coordinator.
import { Consistency, GroupMemberGo, GroupMemberStep } from "@lull/proto";
import { LullError, isErrorCode, type Clock, type Logger } from "@lull/shared";
import type { GroupMembership, GroupMemberships } from "../jobs/membership.js";
import { Deferred } from "./deferred.js";

export const COORDINATOR_LOST_CODE = "LULL_E_GROUP_COORDINATOR_LOST";

export interface MemberStepReport {
  step: GroupMemberStep.GROUP_MEMBER_STEP_BARRIER_ENDED | GroupMemberStep.GROUP_MEMBER_STEP_SNAPSHOT_TAKEN;
  consistency?: Consistency;
  snapshotAt?: number;
}

export interface RemoteMembershipOptions {
  groupRunId: string;
  guestId: string;
  /** The node that asked this member to join (the only one whose word it takes). */
  coordinator: string;
  makesCopy: boolean;
  clock: Clock;
  log: Logger;
  /** From joining, how long the member waits for the group barrier (and, without a copy, for the point). */
  holdMs: number;
  /** From the group barrier, how long a member with a copy waits for the snapshot point. */
  snapshotTimeoutMs: number;
  /** Sends a step to the coordinator (the JoinGroupRun stream). */
  report: (r: MemberStepReport) => void;
}

export class RemoteMembership implements GroupMembership {
  readonly groupRunId: string;
  readonly guestId: string;
  readonly coordinator: string;
  private readonly abort = new AbortController();
  private readonly barrier = new Deferred();
  private readonly point = new Deferred();
  private readonly timers = new AbortController();
  private failed: LullError | undefined;

  constructor(private readonly o: RemoteMembershipOptions) {
    this.groupRunId = o.groupRunId;
    this.guestId = o.guestId;
    this.coordinator = o.coordinator;
    this.after(o.holdMs, () => {
      const waitingFor = o.makesCopy ? this.barrier : this.point;
      if (!waitingFor.settled) this.lose(`no word from the coordinating node ${o.coordinator} within ${o.holdMs} ms of joining`);
    });
  }

  get signal(): AbortSignal {
    return this.abort.signal;
  }

  get failure(): LullError | undefined {
    return this.failed;
  }

  /** Whether the coordinator's word that every copy exists came (the member goes on alone from here). */
  get pastPoint(): boolean {
    return this.point.settled && this.failed === undefined;
  }

  async barrierEnded(consistency: Consistency, signal: AbortSignal): Promise<void> {
    if (this.failed) throw this.failed;
    this.o.report({ step: GroupMemberStep.GROUP_MEMBER_STEP_BARRIER_ENDED, consistency });
    await (this.o.makesCopy ? this.barrier : this.point).wait(signal);
  }

  async snapshotTaken(snapshotAt: number, signal: AbortSignal): Promise<void> {
    if (this.failed) throw this.failed;
    this.o.report({ step: GroupMemberStep.GROUP_MEMBER_STEP_SNAPSHOT_TAKEN, snapshotAt });
    await this.point.wait(signal);
  }

  /** The coordinator's word; false when it changes nothing (the member is past that step, or has failed). */
  release(go: GroupMemberGo, code = "", message = ""): boolean {
    if (this.failed) return false;
    switch (go) {
      case GroupMemberGo.GROUP_MEMBER_GO_BARRIER:
        if (this.barrier.settled) return false;
        this.barrier.resolve();
        this.after(this.o.snapshotTimeoutMs, () => {
          if (!this.point.settled) this.lose(`the coordinating node ${this.o.coordinator} did not reach the snapshot point within ${this.o.snapshotTimeoutMs} ms of the barrier`);
        });
        return true;
      case GroupMemberGo.GROUP_MEMBER_GO_POINT:
        if (this.point.settled) return false;
        this.barrier.resolve();
        this.point.resolve();
        this.timers.abort();
        return true;
      case GroupMemberGo.GROUP_MEMBER_GO_FAIL:
        // The coordinator's cause as it gave it (an unknown code: the group failed, its code in the message).
        return this.stop(
          new LullError(isErrorCode(code) ? code : "LULL_E_GROUP_MEMBER_FAILED", `${isErrorCode(code) || !code ? "" : `${code}: `}${message || `the coordinating node ${this.o.coordinator} failed group run ${this.groupRunId}`}`),
        );
      default:
        // CANCEL is the caller's (the job is cancelled through the runner, see cancelled()).
        return false;
    }
  }

  /**
   * The run was cancelled (the coordinator's CANCEL): the caller cancels the member job through the
   * runner, which ends it `cancelled`; from here no word changes anything and no deadline fires.
   */
  cancelled(reason: string): void {
    this.failed ??= new LullError("LULL_E_CANCELLED", reason);
    this.timers.abort();
  }

  /** The coordinator went away (its stream closed): before the point the member stops; after it nothing changes. */
  coordinatorGone(why: string): void {
    if (!this.point.settled) this.lose(`the coordinating node ${this.o.coordinator} went away before every member's snapshot existed: ${why}`);
  }

  /** Stops the timers (the member job ended). */
  close(): void {
    this.timers.abort();
  }

  private lose(why: string): void {
    this.stop(new LullError(COORDINATOR_LOST_CODE, `group run ${this.groupRunId}: ${why}; the member stopped and its stacks run again`));
  }

  private stop(failure: LullError): boolean {
    if (this.failed || this.point.settled) return false;
    this.failed = failure;
    this.o.log.warn({ groupRunId: this.groupRunId, guestId: this.guestId, code: failure.code, err: failure.message }, "remote group member stopping");
    this.timers.abort();
    this.barrier.reject(failure);
    this.point.reject(failure);
    this.abort.abort(failure);
    return true;
  }

  private after(ms: number, fire: () => void): void {
    this.o.clock.sleep(ms, this.timers.signal).then(fire, () => {});
  }
}

/** The remote memberships of this node's member jobs, by job id (the runner asks them after the local coordinator). */
export class RemoteMemberships implements GroupMemberships {
  private readonly byJob = new Map<string, RemoteMembership>();

  add(jobId: string, membership: RemoteMembership): void {
    this.byJob.set(jobId, membership);
  }

  remove(jobId: string): void {
    this.byJob.get(jobId)?.close();
    this.byJob.delete(jobId);
  }

  membershipOf(jobId: string): RemoteMembership | undefined {
    return this.byJob.get(jobId);
  }

  /** This node's member jobs of run `groupRunId`. */
  *jobIds(groupRunId: string): Iterable<string> {
    for (const [jobId, membership] of this.byJob) if (membership.groupRunId === groupRunId) yield jobId;
  }

  /** The membership of `guestId` in run `groupRunId`, if this node runs it. */
  find(groupRunId: string, guestId: string): { jobId: string; membership: RemoteMembership } | undefined {
    for (const [jobId, membership] of this.byJob) if (membership.groupRunId === groupRunId && membership.guestId === guestId) return { jobId, membership };
    return undefined;
  }
}

/** The runner's view: the local coordinator's memberships first, then the remote ones. */
export function eitherMembership(...sources: ReadonlyArray<GroupMemberships | undefined>): GroupMemberships {
  return {
    membershipOf: (jobId) => {
      for (const source of sources) {
        const m = source?.membershipOf(jobId);
        if (m) return m;
      }
      return undefined;
    },
  };
}
