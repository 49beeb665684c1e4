// One encoding of an event for every stream that sends it. The event bus hands the same Event
// object to every watcher (events/bus.ts); grpc-js would serialise it once per stream. The
// server-streaming methods of the definition the servers register get a response serialiser that
// remembers the bytes of each object it encoded (a WeakMap: the bytes go with the object), so a
// live event followed by 2,000 controllers is encoded once. Objects are never mutated after they
// are published, which is what makes the cache safe; a backlog event read from the store is a new
// object and is encoded for its stream alone.
//
// WatchEventBatches sends an EventBatch (`repeated Event events = 1`), whose encoding is each
// event's bytes behind its field tag and length: its serialiser frames the bytes WatchEvents's
// cache holds, so an event is encoded once whichever of the two streams send it. A stream may
// also write bytes it encoded itself (events read for it alone, grpc/event-senders.ts): they pass
// as they are.
import type { ServiceDefinition } from "@grpc/grpc-js";
import type { Event, EventBatch } from "@lull/proto";

/** The methods whose responses are EventBatches of the `watchEvents` method's events. */
const EVENT_BATCH_METHODS = new Set(["watchEventBatches"]);
/** Field 1, length-delimited: the tag of each `events` entry of an EventBatch. */
const EVENTS_TAG = 0x0a;

/** A copy of `definition` whose server-streaming methods encode each response object once. */
export function withSharedEncoding<T extends ServiceDefinition>(definition: T): T {
  const out: Record<string, unknown> = {};
  const caching = new Map<string, (value: unknown) => Buffer>();
  for (const [name, method] of Object.entries(definition)) {
    if (method.responseStream && !EVENT_BATCH_METHODS.has(name)) caching.set(name, encodeOnce(method.responseSerialize));
  }
  const encodeEvent = caching.get("watchEvents");
  for (const [name, method] of Object.entries(definition)) {
    if (EVENT_BATCH_METHODS.has(name) && encodeEvent) {
      out[name] = { ...method, responseSerialize: (batch: EventBatch | Buffer) => (Buffer.isBuffer(batch) ? batch : frameBatch(batch.events, encodeEvent)) };
    }
    else out[name] = caching.has(name) ? { ...method, responseSerialize: caching.get(name) } : method;
  }
  return out as T;
}

function encodeOnce(encode: (value: unknown) => Buffer): (value: unknown) => Buffer {
  const encoded = new WeakMap<object, Buffer>();
  return (value) => {
    if (Buffer.isBuffer(value)) return value;
    if (typeof value !== "object" || value === null) return encode(value);
    let bytes = encoded.get(value);
    if (bytes === undefined) {
      bytes = encode(value);
      encoded.set(value, bytes);
    }
    return bytes;
  };
}

/** The bytes of an EventBatch of `events`, each event's own bytes from `encodeEvent`. */
function frameBatch(events: readonly Event[], encodeEvent: (event: Event) => Buffer): Buffer {
  const parts = events.map(encodeEvent);
  let size = 0;
  for (const p of parts) size += 1 + varintSize(p.length) + p.length;
  const out = Buffer.allocUnsafe(size);
  let at = 0;
  for (const p of parts) {
    out[at++] = EVENTS_TAG;
    for (let n = p.length; ; n >>>= 7) {
      if (n < 0x80) {
        out[at++] = n;
        break;
      }
      out[at++] = (n & 0x7f) | 0x80;
    }
    at += p.copy(out, at);
  }
  return out;
}

function varintSize(n: number): number {
  let size = 1;
  while (n >= 0x80) {
    n >>>= 7;
    size += 1;
  }
  return size;
}
