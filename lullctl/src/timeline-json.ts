// The lines `lullctl --json` streams while it follows a job (`backup --wait`, `wait`): one JSON
// object per line, each with a `type`. The schema is documented in lullctl/README.md ("JSON
// stream") and checked by timeline-json.test.ts; fields are only ever added, never renamed.
//
//   phase     the job entered a phase       phase, mode, consistency, snapshotAt, error
//   stack     a stack's state changed        stack, state, downtimeMs, reason
//   note      the agent noted something      message, errorCode
//   progress  archive bytes so far           bytesDone, bytesTotal
//     (each of the four also: seq, at, offsetMs since the job was created, jobId, guestId)
//   summary   the last line: the job as lullctl ended its watch (jobJson), and what it waited for
//   error     why lullctl exits non-zero: { code, message }
import { EventKind, Phase, type Event, type Job } from "@lull/proto";
import { isTerminal, modeName, phaseName, type LullError } from "@lull/shared";
import { jobJson } from "./json-views.js";
import { consistencyName, stackStateName } from "./names.js";

export type TimelineType = "phase" | "stack" | "note" | "progress";

const iso = (d: Date | undefined) => (d ? d.toISOString() : null);

function typeOf(e: Event): TimelineType {
  switch (e.kind) {
    case EventKind.EVENT_KIND_PHASE:
      return "phase";
    case EventKind.EVENT_KIND_STACK:
      return "stack";
    case EventKind.EVENT_KIND_PROGRESS:
      return "progress";
    default:
      return "note";
  }
}

/** One event of a job's timeline as its JSON line. */
export function timelineJson(e: Event, offsetMs: number) {
  const head = { type: typeOf(e), seq: e.seq, at: iso(e.at), offsetMs, jobId: e.jobId, guestId: e.guestId };
  switch (head.type) {
    case "phase": {
      const failed = e.phase === Phase.PHASE_FAILED || e.phase === Phase.PHASE_CANCELLED;
      return {
        ...head,
        phase: phaseName(e.phase),
        mode: modeName(e.mode),
        consistency: consistencyName(e.consistency),
        snapshotAt: iso(e.snapshotAt),
        error: failed ? { code: e.errorCode || null, message: e.message || null } : null,
      };
    }
    case "stack":
      return { ...head, stack: e.stack, state: stackStateName(e.stackState), downtimeMs: e.downtimeMs, reason: e.message || null };
    case "progress":
      return { ...head, bytesDone: e.bytesDone, bytesTotal: e.bytesTotal };
    case "note":
      return { ...head, message: e.message || null, errorCode: e.errorCode || null };
  }
}

/** The summary line: the job as the watch ended, with what was waited for. */
export function summaryJson(job: Job, extra: { created?: boolean; until?: "snapshotted" | "done"; reached?: boolean } = {}) {
  return { type: "summary" as const, ...extra, ended: isTerminal(job.phase), job: jobJson(job) };
}

export function errorJson(error: Pick<LullError, "code" | "message">) {
  return { type: "error" as const, error: { code: error.code, message: error.message } };
}
