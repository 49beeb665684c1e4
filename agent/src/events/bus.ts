// In-process fan-out of events that are already committed to the store. The ledger
// publishes after each transaction; watchers and the quiesce barrier subscribe.
// A listener must not throw; if one does, the error is logged and the others still run.
import type { Event } from "@lull/proto";
import type { Logger } from "@lull/shared";

export interface EventFilter {
  guestId?: string | undefined;
  jobId?: string | undefined;
  /** A consistency group run: its own GROUP events and the events of its member jobs. */
  groupRunId?: string | undefined;
}

export type EventListener = (event: Event) => void;

interface Subscription {
  filter: EventFilter;
  listener: EventListener;
}

export function matchesFilter(filter: EventFilter, event: Event): boolean {
  if (filter.guestId !== undefined && event.guestId !== filter.guestId) return false;
  if (filter.jobId !== undefined && event.jobId !== filter.jobId) return false;
  if (filter.groupRunId !== undefined && event.groupRunId !== filter.groupRunId) return false;
  return true;
}

export class EventBus {
  private readonly subscriptions = new Set<Subscription>();

  constructor(private readonly log: Logger) {}

  /** Calls `listener` for every later published event that matches; returns the unsubscribe function. */
  subscribe(filter: EventFilter, listener: EventListener): () => void {
    const sub: Subscription = { filter, listener };
    this.subscriptions.add(sub);
    return () => {
      this.subscriptions.delete(sub);
    };
  }

  /** Delivers committed events, in sequence order, to the matching subscribers. */
  publish(events: readonly Event[]): void {
    for (const event of events) {
      for (const sub of [...this.subscriptions]) {
        if (!matchesFilter(sub.filter, event)) continue;
        try {
          sub.listener(event);
        } catch (err) {
          this.log.error({ err, seq: event.seq }, "event listener failed");
        }
      }
    }
  }

  get size(): number {
    return this.subscriptions.size;
  }
}
