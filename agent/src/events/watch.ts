// A watcher's stream: persisted events with seq > afterSeq, then live ones, with no gap and
// no duplicate. It subscribes to the bus *before* reading the backlog, then drains the live
// buffer, skipping every seq it already sent. A watcher that falls too far behind drops its
// live buffer and reads again from the store, so memory stays bounded. A stream that covers events
// retention deleted carries a notice where they were (pruned-notice.ts).
import type { Event } from "@lull/proto";
import type { JobStore } from "../jobs/store.js";
import type { EventBus, EventFilter } from "./bus.js";
import { prunedNotice, prunedThroughFor } from "./pruned-notice.js";

export interface EventStreamOptions {
  store: JobStore;
  bus: EventBus;
  filter: EventFilter;
  afterSeq: number;
  /** Sends one event; resolves when the transport can take the next. */
  send: (event: Event) => Promise<void>;
  /**
   * Holds the transport's writes while a batch of events (a backlog page, the live events that came
   * together) is sent, so the batch leaves in one write; returns the release. Default: none.
   */
  hold?: () => () => void;
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
  const sendNotice = async () => {
    const notice = pending;
    pending = undefined;
    if (!notice || signal.aborted) return;
    await options.send(prunedNotice(notice.through, notice.from, filter, new Date((options.now ?? Date.now)())));
    lastSent = notice.through;
  };

  const sendIfNew = async (event: Event) => {
    if (event.seq <= lastSent || signal.aborted) return;
    if (pending && event.seq > pending.through) await sendNotice();
    if (signal.aborted) return;
    await options.send(event);
    lastSent = event.seq;
  };

  const sendAll = async (events: readonly Event[]) => {
    const release = options.hold?.();
    try {
      for (const event of events) await sendIfNew(event);
    } finally {
      release?.();
    }
  };

  const readBacklog = async () => {
    for (;;) {
      checkPruned();
      const page = store.events.after({ afterSeq: lastSent, guestId: filter.guestId, jobId: filter.jobId, groupRunId: filter.groupRunId, limit: pageSize });
      await sendAll(page);
      if (signal.aborted) return;
      if (page.length < pageSize) return sendNotice();
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
      await sendAll(batch);
    }
    return lastSent;
  } finally {
    unsubscribe();
    signal.removeEventListener("abort", onAbort);
  }
}
