// In-process fan-out of events that are already committed to the store. The ledger
// publishes after each transaction; watchers and the quiesce barrier subscribe.
// A listener must not throw; if one does, the error is logged and the others still run.
//
// Subscriptions are indexed by the guest they follow (or by none), so an event costs work only
// for the subscriptions that can match it: a node with many controllers, each following its own
// guest, does not test every controller's filter for every event. The same Event object goes to
// every listener (the gRPC layer encodes it once for all streams: grpc/shared-encoding.ts).
import type { Event } from "@lull/proto";
import { concernsStack, type Logger } from "@lull/shared";

export interface EventFilter {
  guestId?: string | undefined;
  jobId?: string | undefined;
  /** A consistency group run: its own GROUP events and the events of its member jobs. */
  groupRunId?: string | undefined;
  /** What one stack's controller acts on: STACK events of this stack only, no PROGRESS events. */
  forStack?: string | undefined;
}

export type EventListener = (event: Event) => void;

interface Subscription {
  filter: EventFilter;
  listener: EventListener;
  /** Only the guest filter is set: the index alone decides (no per-event test). */
  guestOnly: boolean;
}

export function matchesFilter(filter: EventFilter, event: Event): boolean {
  if (filter.guestId !== undefined && event.guestId !== filter.guestId) return false;
  if (filter.jobId !== undefined && event.jobId !== filter.jobId) return false;
  if (filter.groupRunId !== undefined && event.groupRunId !== filter.groupRunId) return false;
  return filter.forStack === undefined || concernsStack(event, filter.forStack);
}

/** The index key of subscriptions without a guest filter. */
const ANY_GUEST = Symbol("any guest");

export class EventBus {
  /** guest id (or ANY_GUEST) → its subscriptions, in subscription order. */
  private readonly byGuest = new Map<string | typeof ANY_GUEST, Set<Subscription>>();
  private count = 0;

  constructor(private readonly log: Logger) {}

  /** Calls `listener` for every later published event that matches; returns the unsubscribe function. */
  subscribe(filter: EventFilter, listener: EventListener): () => void {
    const key = filter.guestId ?? ANY_GUEST;
    const sub: Subscription = { filter, listener, guestOnly: filter.jobId === undefined && filter.groupRunId === undefined && filter.forStack === undefined };
    let set = this.byGuest.get(key);
    if (!set) this.byGuest.set(key, (set = new Set()));
    set.add(sub);
    this.count += 1;
    let subscribed = true;
    return () => {
      if (!subscribed) return;
      subscribed = false;
      this.count -= 1;
      set.delete(sub);
      if (set.size === 0 && this.byGuest.get(key) === set) this.byGuest.delete(key);
    };
  }

  /** Delivers committed events, in sequence order, to the matching subscribers. */
  publish(events: readonly Event[]): void {
    for (const event of events) {
      // Copies: a listener may subscribe or unsubscribe while the event is delivered.
      const anyGuest = this.byGuest.get(ANY_GUEST);
      const ofGuest = this.byGuest.get(event.guestId);
      const targets = [...(anyGuest ?? []), ...(ofGuest ?? [])];
      for (const sub of targets) {
        if (!sub.guestOnly && !matchesFilter(sub.filter, event)) continue;
        try {
          sub.listener(event);
        } catch (err) {
          this.log.error({ err, seq: event.seq }, "event listener failed");
        }
      }
    }
  }

  get size(): number {
    return this.count;
  }
}
