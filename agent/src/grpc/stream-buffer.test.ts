// A watcher's stream holds at most EVENT_STREAM_BUFFER unsent events: the writer goes on without
// waiting below it (so a replay is not held to the transport's 16-message high-water mark) and
// waits for the transport to drain at it, so a client that stops reading cannot grow the agent's memory.
import { strict as assert } from "node:assert";
import { Writable } from "node:stream";
import { describe, it } from "node:test";
import type { Event } from "@lull/proto";
import { EVENT_STREAM_BUFFER, batchWrites } from "./batched-writes.js";

/** An object-mode stream like grpc-js's server stream, whose transport completes writes only when released. */
function stalledTransport() {
  const pending: Array<() => void> = [];
  const stream = new Writable({ objectMode: true, write: (_chunk, _enc, cb) => void pending.push(cb) });
  return { stream, release: () => pending.splice(0).forEach((cb) => cb()), pending };
}

const event = (seq: number) => ({ seq }) as unknown as Event;

describe("a watch stream's buffer (batchWrites)", () => {
  it("writes without waiting below the buffer, waits at it, and goes on once the transport drains", async () => {
    const t = stalledTransport();
    const signal = new AbortController().signal;
    const writer = batchWrites<Event>(t.stream);
    let waited = -1;
    for (let seq = 1; seq <= EVENT_STREAM_BUFFER + 10; seq++) {
      let resolved = false;
      const p = writer.write(event(seq), signal).then(() => void (resolved = true));
      await Promise.resolve();
      await Promise.resolve();
      if (!resolved) {
        waited = seq;
        // Drain the transport: each released write lets the next buffered one through, until empty.
        while (t.stream.writableLength > 0) {
          t.release();
          await new Promise((r) => setImmediate(r));
        }
        await p;
        break;
      }
    }
    assert.equal(waited, EVENT_STREAM_BUFFER, "the first write that waits is the one that fills the buffer");
    assert.equal(t.stream.writableLength, 0);
  });

  it("a stream that ends while the writer waits releases it", async () => {
    const t = stalledTransport();
    const stop = new AbortController();
    const writer = batchWrites<Event>(t.stream);
    for (let seq = 1; seq < EVENT_STREAM_BUFFER; seq++) await writer.write(event(seq), stop.signal);
    const waiting = writer.write(event(EVENT_STREAM_BUFFER), stop.signal);
    stop.abort();
    await waiting;
    assert.equal(t.stream.writableLength, EVENT_STREAM_BUFFER);
  });
});
