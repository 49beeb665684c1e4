// A live event sent on many streams is encoded once; other objects, and unary responses, as before.
// Against the real service definition and, over a real socket, against grpc-js.
import { strict as assert } from "node:assert";
import { describe, it } from "node:test";
import type { ServiceDefinition } from "@grpc/grpc-js";
import { AgentService, EventBatch as EventBatchCodec, Event as EventCodec, type Event } from "@lull/proto";
import { withSharedEncoding } from "./shared-encoding.js";

/** The service definition with WatchEvents's serialiser counting its calls, and its shared-encoding copy. */
function countingEventEncodings() {
  let count = 0;
  const counting: ServiceDefinition = {
    ...AgentService,
    watchEvents: {
      ...AgentService.watchEvents,
      responseSerialize: (v: Event) => {
        count += 1;
        return AgentService.watchEvents.responseSerialize(v);
      },
    },
  };
  return { counting, shared: withSharedEncoding(counting), calls: () => count };
}

describe("shared encoding", () => {
  it("encodes one event object once for every stream; a new object again; unary methods untouched", () => {
    const { counting, shared, calls } = countingEventEncodings();
    const e: Event = EventCodec.fromPartial({ seq: 7, guestId: "a", jobId: "j", message: "hello", at: new Date(1_700_000_000_000) });
    const bytes = Array.from({ length: 500 }, () => shared.watchEvents!.responseSerialize(e));
    assert.equal(calls(), 1);
    assert.ok(bytes.every((b) => b === bytes[0]));
    assert.deepEqual(EventCodec.decode(bytes[0]!), e, "the bytes are the event's");
    const copy = { ...e, message: "changed copy" };
    assert.equal(EventCodec.decode(shared.watchEvents!.responseSerialize(copy)).message, "changed copy");
    assert.equal(calls(), 2);
    assert.equal(shared.getJob, counting.getJob, "unary methods are left as they are");
  });

  it("an EventBatch is its events' shared bytes: the generated codec's encoding, each event encoded once for both streams", () => {
    const { counting, shared, calls } = countingEventEncodings();
    // A long message: an event whose length takes more than one byte of varint.
    const events = [1, 2, 3].map((seq) => EventCodec.fromPartial({ seq, guestId: "a", jobId: "j", message: "m".repeat(seq * 100), at: new Date(1_700_000_000_000 + seq) }));
    const single = shared.watchEvents!.responseSerialize(events[0]);
    const batch = shared.watchEventBatches!.responseSerialize({ events });
    assert.deepEqual(batch, Buffer.from(EventBatchCodec.encode({ events }).finish()), "the bytes of the generated codec");
    assert.deepEqual(EventBatchCodec.decode(batch).events, events);
    assert.equal(calls(), 3, "the event sent alone first is not encoded again");
    shared.watchEventBatches!.responseSerialize({ events: events.slice(1) });
    assert.equal(calls(), 3);
    assert.deepEqual(single, shared.watchEvents!.responseSerialize(events[0]));
    const own = Buffer.from(EventBatchCodec.encode({ events }).finish());
    assert.equal(shared.watchEventBatches!.responseSerialize(own), own, "bytes a stream encoded itself pass as they are");
    assert.equal(shared.watchEvents!.responseSerialize(single), single);
    assert.equal(calls(), 3);
  });
});
