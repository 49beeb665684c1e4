// Lower-case names of the API's enums as lullctl prints them (text and JSON).
import { Consistency, EventKind, QuiescePolicy, StackState } from "@lull/proto";

export function consistencyName(c: Consistency): string {
  switch (c) {
    case Consistency.CONSISTENCY_APP:
      return "app";
    case Consistency.CONSISTENCY_CRASH:
      return "crash";
    default:
      return "unknown";
  }
}

export function policyName(p: QuiescePolicy): string {
  switch (p) {
    case QuiescePolicy.QUIESCE_POLICY_FAIL:
      return "fail";
    case QuiescePolicy.QUIESCE_POLICY_CRASH_CONSISTENT:
      return "crash-consistent";
    default:
      return "default";
  }
}

export function stackStateName(s: StackState): string {
  switch (s) {
    case StackState.STACK_STATE_PENDING:
      return "pending";
    case StackState.STACK_STATE_QUIESCED:
      return "quiesced";
    case StackState.STACK_STATE_REFUSED:
      return "refused";
    case StackState.STACK_STATE_TIMED_OUT:
      return "timed-out";
    case StackState.STACK_STATE_RESUMED:
      return "resumed";
    case StackState.STACK_STATE_LEFT_STOPPED:
      return "left-stopped";
    case StackState.STACK_STATE_NOT_ANSWERED:
      return "not-answered";
    default:
      return "unknown";
  }
}

export function eventKindName(k: EventKind): string {
  switch (k) {
    case EventKind.EVENT_KIND_PHASE:
      return "phase";
    case EventKind.EVENT_KIND_PROGRESS:
      return "progress";
    case EventKind.EVENT_KIND_STACK:
      return "stack";
    case EventKind.EVENT_KIND_NOTE:
      return "note";
    case EventKind.EVENT_KIND_GROUP:
      return "group";
    default:
      return "unknown";
  }
}
