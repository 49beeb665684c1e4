// The agent's record of one run of a consistency group: the API's GroupRun without what is read
// from the member jobs (their ids and the jobs themselves), plus when the current phase began.
// Group runs have ids like jobs: `g-` + 26 lower-case base32 characters, time-sortable.
import { Consistency, EventKind, Phase, QuiescePolicy, SnapshotMode, StackState, type GroupRun, type Job } from "@lull/proto";
import { newJobId } from "../jobs/job-id.js";
import type { EventDraft } from "../ledger/event-log.js";

// The id patterns and their check live in @lull/shared: lullctl checks run ids before it calls.
export { GROUP_ID, GROUP_RUN_ID, validGroupRunId } from "@lull/shared";

export interface GroupRunRecord extends Omit<GroupRun, "jobIds" | "members"> {
  /** When the run entered its current phase. */
  phaseSince: Date;
}

export function newGroupRunId(now: number): string {
  return `g-${newJobId(now).slice(2)}`;
}

/** The idempotency key of a member job: contains spaces, so no client key (printable, no spaces) can collide with it. */
export function memberJobKey(groupRunId: string, guestId: string): string {
  return `group ${groupRunId} member ${guestId}`;
}

export interface NewGroupRun {
  id: string;
  groupId: string;
  guestIds: readonly string[];
  policy: QuiescePolicy;
  idempotencyKey: string;
  quiesceTimeoutMs: number;
  requestedBy: string;
  now: number;
}

export function newGroupRunRecord(input: NewGroupRun): GroupRunRecord {
  const at = new Date(input.now);
  return {
    id: input.id,
    groupId: input.groupId,
    guestIds: [...input.guestIds],
    phase: Phase.PHASE_QUEUED,
    consistency: Consistency.CONSISTENCY_UNSPECIFIED,
    policy: input.policy,
    idempotencyKey: input.idempotencyKey,
    createdAt: at,
    updatedAt: at,
    quiescedAt: undefined,
    snapshotAt: undefined,
    finishedAt: undefined,
    failedIn: Phase.PHASE_UNSPECIFIED,
    errorCode: "",
    errorMessage: "",
    failedGuests: [],
    quiesceMs: 0,
    snapshotMs: 0,
    archiveMs: 0,
    totalMs: 0,
    quiesceTimeoutMs: input.quiesceTimeoutMs,
    requestedBy: input.requestedBy,
    phaseSince: at,
  };
}

/** The API's view: the record with its member jobs (in the order of guest_ids). */
export function toApiGroupRun(record: GroupRunRecord, members: readonly Job[]): GroupRun {
  const { phaseSince: _phaseSince, ...run } = record;
  const ordered = record.guestIds
    .map((g) => members.find((m) => m.guestId === g))
    .filter((m): m is Job => m !== undefined);
  return {
    ...run,
    guestIds: [...run.guestIds],
    failedGuests: [...run.failedGuests],
    jobIds: ordered.map((m) => m.id),
    members: ordered.map((m) => ({ ...m, stacks: m.stacks.map((s) => ({ ...s })) })),
  };
}

/** A GROUP event describing the run as it is now: no job, no guest. */
export function groupEvent(run: GroupRunRecord, fields: Partial<EventDraft> = {}): EventDraft {
  return {
    jobId: "",
    guestId: "",
    kind: EventKind.EVENT_KIND_GROUP,
    phase: run.phase,
    mode: SnapshotMode.SNAPSHOT_MODE_UNSPECIFIED,
    consistency: run.consistency,
    snapshotAt: run.snapshotAt,
    bytesDone: 0,
    bytesTotal: 0,
    stack: "",
    stackState: StackState.STACK_STATE_UNSPECIFIED,
    downtimeMs: 0,
    errorCode: run.errorCode,
    message: "",
    groupRunId: run.id,
    ...fields,
  };
}
