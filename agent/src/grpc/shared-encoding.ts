// One encoding of an event for every stream that sends it. The event bus hands the same Event
// object to every watcher (events/bus.ts); grpc-js would serialise it once per stream. The
// server-streaming methods of the definition the servers register get a response serialiser that
// remembers the bytes of each object it encoded (a WeakMap: the bytes go with the object), so a
// live event followed by 2,000 controllers is encoded once. Objects are never mutated after they
// are published, which is what makes the cache safe; a backlog event read from the store is a new
// object and is encoded for its stream alone.
import type { ServiceDefinition } from "@grpc/grpc-js";

/** A copy of `definition` whose server-streaming methods encode each response object once. */
export function withSharedEncoding<T extends ServiceDefinition>(definition: T): T {
  const out: Record<string, unknown> = {};
  for (const [name, method] of Object.entries(definition)) {
    if (!method.responseStream) {
      out[name] = method;
      continue;
    }
    const encode = method.responseSerialize;
    const encoded = new WeakMap<object, Buffer>();
    out[name] = {
      ...method,
      responseSerialize: (value: unknown): Buffer => {
        if (typeof value !== "object" || value === null) return encode(value);
        let bytes = encoded.get(value);
        if (bytes === undefined) {
          bytes = encode(value);
          encoded.set(value, bytes);
        }
        return bytes;
      },
    };
  }
  return out as T;
}
