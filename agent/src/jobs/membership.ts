// The port through which a backup job's run takes part in a consistency group. The job side
// defines it; the in-process group coordinator (groups/coordinator.ts) implements it today, and a
// remote membership (a group coordinated on another node) implements it next. A job's run never
// knows which.
import type { Consistency } from "@lull/proto";
import type { LullError } from "@lull/shared";

/** What a member job's run sees of its group. */
export interface GroupMembership {
  readonly groupRunId: string;
  /** Aborts (reason: the failure) when the group fails before its snapshot point. */
  readonly signal: AbortSignal;
  /** Why the group stops before its point, once it does: LULL_E_GROUP_MEMBER_FAILED, or LULL_E_CANCELLED (the run was cancelled). */
  readonly failure: LullError | undefined;
  /** This member's own barrier ended; resolves when the group may go on. Rejects with the failure, or when `signal` aborts. */
  barrierEnded(consistency: Consistency, signal: AbortSignal): Promise<void>;
  /** This member's copy exists; resolves at the snapshot point (every copy exists). Rejects with the failure, or when `signal` aborts. */
  snapshotTaken(snapshotAt: number, signal: AbortSignal): Promise<void>;
}

/** Finds the membership of a job that belongs to a running group run. */
export interface GroupMemberships {
  membershipOf(jobId: string): GroupMembership | undefined;
}
