// What one stack's controller and its agent agree on, in one place: which events the controller
// acts on (WatchEventsRequest.for_stack; the agent's bus and replay filter by it, the controller
// drops the rest from an agent that predates it) and how often a lease is renewed.
import { EventKind } from "@lull/proto";

/** Whether a controller of `stack` acts on `event`: no PROGRESS, and of STACK events only its own. */
export function concernsStack(event: { kind: EventKind; stack: string }, stack: string): boolean {
  if (event.kind === EventKind.EVENT_KIND_PROGRESS) return false;
  return event.kind !== EventKind.EVENT_KIND_STACK || event.stack === stack;
}

/** A lease is renewed at a third of its TTL (never more often than every 100 ms), by its controller or by the agent for a stream that holds it. */
export function leaseRenewalInterval(ttlMs: number): number {
  return Math.max(100, Math.floor(ttlMs / 3));
}
