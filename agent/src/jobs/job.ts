// The agent's record of a backup job: the API's Job plus what only the agent needs
// (when the current phase began, for the per-phase durations), and the drafts of
// events the state machine asks to persist.
import { Consistency, EventKind, Phase, QuiescePolicy, SnapshotMode, StackState, type Job } from "@lull/proto";
import type { EventDraft } from "../ledger/event-log.js";

export interface JobRecord extends Job {
  /** When the job entered its current phase. */
  phaseSince: Date;
}

export type { EventDraft } from "../ledger/event-log.js";

/** The API's view of a job: the record without the agent's bookkeeping. */
export function toApiJob(record: JobRecord): Job {
  const { phaseSince: _phaseSince, ...job } = record;
  const rate = archiveMbPerS(record);
  return { ...job, stacks: job.stacks.map((s) => ({ ...s })), ...(rate !== undefined ? { archiveMbPerS: rate } : {}) };
}

/** The archive phase's throughput (the files' bytes over its duration, MB = 10^6 bytes), once it ended; undefined before. */
export function archiveMbPerS(job: Pick<Job, "archiveMs" | "bytesTotal" | "bytesDone">): number | undefined {
  if (job.archiveMs <= 0 || job.bytesTotal <= 0) return undefined;
  return Math.round((Math.min(job.bytesDone, job.bytesTotal) / 1e6 / (job.archiveMs / 1000)) * 10) / 10;
}

export interface NewJob {
  id: string;
  guestId: string;
  engine: string;
  policy: QuiescePolicy;
  idempotencyKey: string;
  quiesceTimeoutMs: number;
  requestedBy: string;
  now: number;
  /** The consistency group run the job is a member of, if any. */
  groupRunId?: string | undefined;
}

/** A freshly created job in `queued`. */
export function newJobRecord(input: NewJob): JobRecord {
  const at = new Date(input.now);
  return {
    id: input.id,
    guestId: input.guestId,
    phase: Phase.PHASE_QUEUED,
    engine: input.engine,
    mode: SnapshotMode.SNAPSHOT_MODE_UNSPECIFIED,
    consistency: Consistency.CONSISTENCY_UNSPECIFIED,
    policy: input.policy,
    idempotencyKey: input.idempotencyKey,
    createdAt: at,
    updatedAt: at,
    snapshotAt: undefined,
    finishedAt: undefined,
    failedIn: Phase.PHASE_UNSPECIFIED,
    errorCode: "",
    errorMessage: "",
    archivePath: "",
    archiveBytes: 0,
    bytesDone: 0,
    bytesTotal: 0,
    quiesceMs: 0,
    snapshotMs: 0,
    archiveMs: 0,
    totalMs: 0,
    stacks: [],
    quiesceTimeoutMs: input.quiesceTimeoutMs,
    requestedBy: input.requestedBy,
    ...(input.groupRunId ? { groupRunId: input.groupRunId } : {}),
    phaseSince: at,
  };
}

/** An event describing `job` as it is now; `fields` add what is specific to the event. */
export function eventFor(job: Job, kind: EventKind, fields: Partial<EventDraft> = {}): EventDraft {
  return {
    jobId: job.id,
    guestId: job.guestId,
    kind,
    phase: job.phase,
    mode: job.mode,
    consistency: job.consistency,
    snapshotAt: job.snapshotAt,
    bytesDone: job.bytesDone,
    bytesTotal: job.bytesTotal,
    stack: "",
    stackState: StackState.STACK_STATE_UNSPECIFIED,
    downtimeMs: 0,
    errorCode: job.errorCode,
    message: "",
    ...(job.groupRunId ? { groupRunId: job.groupRunId } : {}),
    ...fields,
  };
}
