// How a watch stream's events are cut into EventBatches: whole sends while they are small, at
// most EVENT_BATCH_MAX events, and far below a client's message limit when the events' texts are long.
import { strict as assert } from "node:assert";
import { describe, it } from "node:test";
import { Event as EventCodec, EventBatch as EventBatchCodec, type Event } from "@lull/proto";
import { EVENT_BATCH_MAX, EVENT_BATCH_MAX_BYTES, eventSizeBound, inBatches } from "./event-senders.js";

const events = (n: number, message = "") =>
  Array.from({ length: n }, (_, i) => EventCodec.fromPartial({ seq: i + 1, guestId: "101", jobId: "j-01kh4b8syxevafah7yjj6e0grm", message, at: new Date(1_700_000_000_000 + i) }));

describe("inBatches", () => {
  it("keeps a send in one batch up to EVENT_BATCH_MAX events, in order", () => {
    assert.deepEqual(inBatches(events(3)).map((b) => b.events.map((e) => e.seq)), [[1, 2, 3]]);
    const cut = inBatches(events(2 * EVENT_BATCH_MAX + 1));
    assert.deepEqual(cut.map((b) => b.events.length), [EVENT_BATCH_MAX, EVENT_BATCH_MAX, 1]);
    assert.deepEqual(cut.flatMap((b) => b.events.map((e) => e.seq)), events(2 * EVENT_BATCH_MAX + 1).map((e) => e.seq));
    assert.deepEqual(inBatches([]), []);
  });

  it("cuts long events by size: every batch encodes to at most EVENT_BATCH_MAX_BYTES; one huge event goes alone", () => {
    const long = events(100, "ü".repeat(20_000));
    const cut = inBatches(long);
    assert.ok(cut.length > 1);
    for (const b of cut) assert.ok(EventBatchCodec.encode(b).finish().length <= EVENT_BATCH_MAX_BYTES);
    assert.equal(cut.flatMap((b) => b.events).length, 100);
    assert.deepEqual(inBatches(events(2, "x".repeat(EVENT_BATCH_MAX_BYTES))).map((b) => b.events.length), [1, 1]);
  });

  it("the size bound is above the real size of the largest fields", () => {
    // A negative enum value takes 10 bytes, the most an int32 takes.
    const enums = { kind: -1, phase: -1, mode: -1, consistency: -1, stackState: -1 } as Partial<Event>;
    const e = EventCodec.fromPartial({ ...enums, seq: 2 ** 53 - 1, at: new Date(8.64e15), snapshotAt: new Date(8.64e15),
      bytesDone: 2 ** 53 - 1, bytesTotal: 2 ** 53 - 1, downtimeMs: 2 ** 53 - 1, jobId: "j", guestId: "g", stack: "s", errorCode: "E", message: "€", groupRunId: "r" });
    assert.ok(EventBatchCodec.encode({ events: [e] }).finish().length <= eventSizeBound(e));
  });
});
