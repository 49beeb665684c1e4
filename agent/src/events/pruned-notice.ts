// What a watcher is told when its stream covers events that retention deleted. The agent keeps
// events only as long as their jobs (agent/src/retention/); a watcher resuming from a sequence
// number older than the newest pruned one may therefore miss events, and it must know.
//
// The answer fits the existing stream without breaking any client: a NOTE event whose `seq` is the
// newest pruned sequence number P (an event number nobody else holds any more), with error_code
// LULL_E_EVENTS_PRUNED, placed in sequence order — after the kept events numbered below P, before
// those above it. Clients that drop events at or below the last seq they saw (lullctl, the
// controller) keep working and advance past P; nothing that still exists is withheld.
//
// Streams of one job or of one group run get no notice: those exist, so none of their events was
// pruned (a job goes with all its events, a group run with all its members). A guest's stream uses
// that guest's watermark; the stream of every guest uses the agent-wide one.
import { EventKind, Phase, SnapshotMode, Consistency, StackState, type Event } from "@lull/proto";
import type { EventFilter } from "./bus.js";

export const EVENTS_PRUNED = "LULL_E_EVENTS_PRUNED";

/** The newest pruned seq that matters to a stream with `filter`, or 0 when none does. */
export function prunedThroughFor(filter: EventFilter, prunedThroughSeq: (guestId?: string) => number): number {
  if (filter.jobId !== undefined || filter.groupRunId !== undefined) return 0;
  return prunedThroughSeq(filter.guestId);
}

export function prunedNotice(prunedThrough: number, afterSeq: number, filter: EventFilter, at: Date): Event {
  return {
    seq: prunedThrough,
    at,
    jobId: "",
    guestId: filter.guestId ?? "",
    kind: EventKind.EVENT_KIND_NOTE,
    phase: Phase.PHASE_UNSPECIFIED,
    mode: SnapshotMode.SNAPSHOT_MODE_UNSPECIFIED,
    consistency: Consistency.CONSISTENCY_UNSPECIFIED,
    snapshotAt: undefined,
    bytesDone: 0,
    bytesTotal: 0,
    stack: "",
    stackState: StackState.STACK_STATE_UNSPECIFIED,
    downtimeMs: 0,
    errorCode: EVENTS_PRUNED,
    message:
      `events up to #${prunedThrough} of jobs past the agent's retention policy were deleted; ` +
      `events after #${afterSeq} up to there may be missing from this stream (the jobs that are kept: ListJobs)`,
  };
}
