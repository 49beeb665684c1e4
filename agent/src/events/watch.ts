// A watcher's stream: persisted events with seq > afterSeq, then live ones, with no gap and
// no duplicate. It subscribes to the bus *before* reading the backlog, then drains the live
// buffer, skipping every seq it already sent. A watcher that falls too far behind drops its
// live buffer and reads again from the store, so memory stays bounded. A stream that covers events
// retention deleted carries a notice where they were (pruned-notice.ts). The events that go
// together (a backlog page, the live events that came together) reach the transport in one `send`,
// which may write them one message each (WatchEvents) or as one message (WatchEventBatches).
import type { Event } from "@lull/proto";
import type { JobStore } from "../jobs/store.js";
import type { EventBus, EventFilter } from "./bus.js";
import { prunedNotice, prunedThroughFor } from "./pruned-notice.js";

export interface EventStreamOptions {
  store: JobStore;
  bus: EventBus;
  filter: EventFilter;
  afterSeq: number;
  /**
   * Sends events (never none), oldest first; resolves when the transport can take the next.
   * `fromStore`: they were read from the store for this stream alone (no other stream sends these
   * objects); otherwise they are live events, the bus's objects that every watcher shares.
   */
  send: (events: readonly Event[], fromStore: boolean) => Promise<void>;
  /** Ends the stream (client cancelled, or the agent shuts down). */
  signal: AbortSignal;
  pageSize?: number;
  /** Live events held for a slow watcher before it falls back to reading the store. */
  maxBuffered?: number;
  /** Time of a pruned-events notice; default Date.now. */
  now?: () => number;
}

/** Streams until `signal` aborts; returns the last seq sent. */
export async function streamEvents(options: EventStreamOptions): Promise<number> {
  const { store, bus, filter, signal } = options;
  const pageSize = options.pageSize ?? 500;
  const maxBuffered = options.maxBuffered ?? 10_000;
  let lastSent = options.afterSeq;
  let live: Event[] = [];
  let overflowed = false;
  let wake: (() => void) | undefined;

  const unsubscribe = bus.subscribe(filter, (event) => {
    if (overflowed) return;
    live.push(event);
    if (live.length > maxBuffered) {
      overflowed = true;
      live = [];
    }
    wake?.();
  });
  const onAbort = () => wake?.();
  signal.addEventListener("abort", onAbort, { once: true });

  // Retention deleted events numbered up to `pending.through` that this stream, positioned at
  // `pending.from`, has not passed yet: the notice goes out in sequence order.
  let pending: { through: number; from: number } | undefined;
  const checkPruned = () => {
    const through = prunedThroughFor(filter, (guestId) => store.events.prunedThrough(guestId));
    if (through > lastSent && through > (pending?.through ?? 0)) pending = { through, from: pending?.from ?? lastSent };
  };
  /** `events` without those already sent, with the pending notice in its place (or at the end when `last`). */
  const outgoing = (events: readonly Event[], last: boolean): Event[] => {
    const out: Event[] = [];
    let at = lastSent;
    const notice = () => {
      if (!pending) return;
      out.push(prunedNotice(pending.through, pending.from, filter, new Date((options.now ?? Date.now)())));
      at = pending.through;
      pending = undefined;
    };
    for (const event of events) {
      if (event.seq <= at) continue;
      if (pending && event.seq > pending.through) notice();
      out.push(event);
      at = event.seq;
    }
    if (last) notice();
    return out;
  };

  const sendAll = async (events: readonly Event[], fromStore: boolean, last = false) => {
    if (signal.aborted) return;
    const out = outgoing(events, last);
    if (out.length === 0) return;
    await options.send(out, fromStore);
    lastSent = out[out.length - 1]!.seq;
  };

  const readBacklog = async () => {
    for (;;) {
      checkPruned();
      const page = store.events.after({ afterSeq: lastSent, guestId: filter.guestId, jobId: filter.jobId, groupRunId: filter.groupRunId, forStack: filter.forStack, limit: pageSize });
      const last = page.length < pageSize;
      await sendAll(page, true, last);
      if (signal.aborted || last) return;
    }
  };

  try {
    await readBacklog();
    while (!signal.aborted) {
      if (overflowed) {
        overflowed = false;
        await readBacklog();
        continue;
      }
      if (live.length === 0) {
        await new Promise<void>((resolve) => {
          wake = resolve;
        });
        wake = undefined;
        continue;
      }
      const batch = live;
      live = [];
      await sendAll(batch, false);
    }
    return lastSent;
  } finally {
    unsubscribe();
    signal.removeEventListener("abort", onAbort);
  }
}
