// A watcher's stream: persisted events with seq > afterSeq, then live ones, with no gap and
// no duplicate. It subscribes to the bus *before* reading the backlog, then drains the live
// buffer, skipping every seq it already sent. A watcher that falls too far behind drops its
// live buffer and reads again from the store, so memory stays bounded.
import type { Event } from "@lull/proto";
import type { JobStore } from "../jobs/store.js";
import type { EventBus, EventFilter } from "./bus.js";

export interface EventStreamOptions {
  store: JobStore;
  bus: EventBus;
  filter: EventFilter;
  afterSeq: number;
  /** Sends one event; resolves when the transport can take the next. */
  send: (event: Event) => Promise<void>;
  /** Ends the stream (client cancelled, or the agent shuts down). */
  signal: AbortSignal;
  pageSize?: number;
  /** Live events held for a slow watcher before it falls back to reading the store. */
  maxBuffered?: number;
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

  const sendIfNew = async (event: Event) => {
    if (event.seq <= lastSent || signal.aborted) return;
    await options.send(event);
    lastSent = event.seq;
  };

  const readBacklog = async () => {
    for (;;) {
      const page = store.eventsAfter({ afterSeq: lastSent, guestId: filter.guestId, jobId: filter.jobId, groupRunId: filter.groupRunId, limit: pageSize });
      for (const event of page) await sendIfNew(event);
      if (page.length < pageSize || signal.aborted) return;
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
      for (const event of batch) await sendIfNew(event);
    }
    return lastSent;
  } finally {
    unsubscribe();
    signal.removeEventListener("abort", onAbort);
  }
}
