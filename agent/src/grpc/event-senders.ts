// How a watch stream's events leave: WatchEvents writes one message per event (the events that go
// together are held and handed to http2 at once, batched-writes.ts); WatchEventBatches writes them
// as EventBatch messages. A batch holds at most EVENT_BATCH_MAX events and, by a bound on their
// encoded size, stays far below a client's 4 MiB message limit whatever the events' texts.
// Events read from the store for one stream are encoded here, a batch in one go, and handed to the
// stream as bytes; live events go as objects, so that each is encoded once for every stream
// (shared-encoding.ts) — remembering the bytes of backlog events nobody else sends would only
// load the garbage collector.
import type { Writable } from "node:stream";
import { Event as EventCodec, EventBatch as EventBatchCodec, type Event, type EventBatch } from "@lull/proto";
import { batchWrites } from "./batched-writes.js";

/** Events per EventBatch at most (a backlog page is 500). */
export const EVENT_BATCH_MAX = 500;
/** An EventBatch's encoded size at most, by the bound `eventSizeBound`. */
export const EVENT_BATCH_MAX_BYTES = 1024 * 1024;

/** Sends the events of one `streamEvents` send; resolves when the stream can take more. */
export type EventSender = (events: readonly Event[], fromStore: boolean) => Promise<void>;

/** One message per event. */
export function eventMessages(stream: Writable, signal: AbortSignal): EventSender {
  const writer = batchWrites<Event | Buffer>(stream);
  return async (events, fromStore) => {
    const release = writer.hold();
    try {
      for (const event of events) {
        if (signal.aborted) return;
        await writer.write(fromStore ? bytesOf(EventCodec.encode(event).finish()) : event, signal);
      }
    } finally {
      release();
    }
  };
}

/** EventBatch messages. */
export function eventBatchMessages(stream: Writable, signal: AbortSignal): EventSender {
  const writer = batchWrites<EventBatch | Buffer>(stream);
  return async (events, fromStore) => {
    for (const batch of inBatches(events)) {
      if (signal.aborted) return;
      await writer.write(fromStore ? bytesOf(EventBatchCodec.encode(batch).finish()) : batch, signal);
    }
  };
}

/** The encoder's bytes as a Buffer, not copied. */
const bytesOf = (u8: Uint8Array): Buffer => Buffer.from(u8.buffer, u8.byteOffset, u8.byteLength);

/** `events` cut into EventBatches of at most EVENT_BATCH_MAX events and EVENT_BATCH_MAX_BYTES. */
export function inBatches(events: readonly Event[]): EventBatch[] {
  const out: EventBatch[] = [];
  let current: Event[] = [];
  let bytes = 0;
  for (const event of events) {
    const size = eventSizeBound(event);
    if (current.length > 0 && (current.length >= EVENT_BATCH_MAX || bytes + size > EVENT_BATCH_MAX_BYTES)) {
      out.push({ events: current });
      current = [];
      bytes = 0;
    }
    current.push(event);
    bytes += size;
  }
  if (current.length > 0) out.push({ events: current });
  return out;
}

/**
 * At least the bytes `event` takes in an EventBatch: its numbers, times, tags and lengths take
 * under 256, and a string's UTF-8 at most 3 bytes per UTF-16 unit.
 */
export function eventSizeBound(event: Event): number {
  const text = event.jobId.length + event.guestId.length + event.stack.length + event.errorCode.length + event.message.length + (event.groupRunId?.length ?? 0);
  return 256 + 3 * text;
}
