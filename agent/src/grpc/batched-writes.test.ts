// A batch of events leaves a stream at once, not one message per completed write.
import { strict as assert } from "node:assert";
import { Writable } from "node:stream";
import { describe, it } from "node:test";
import { EVENT_STREAM_BUFFER, batchWrites } from "./batched-writes.js";

/** A stream like grpc-js's: one `_write` per message, each completing on a later turn. */
function slowStream() {
  const started: number[] = [];
  const completed: number[] = [];
  const stream = new Writable({
    objectMode: true,
    write(chunk: number, _encoding, callback) {
      started.push(chunk);
      setImmediate(() => {
        completed.push(chunk);
        callback();
      });
    },
  });
  return { stream, started, completed };
}

describe("batchWrites", () => {
  it("without it, each message waits for the previous one's write to complete", () => {
    const { stream, started } = slowStream();
    for (let i = 1; i <= 5; i++) stream.write(i);
    assert.deepEqual(started, [1]);
  });

  it("a held batch is passed on in one go, in order, when released", async () => {
    const { stream, started, completed } = slowStream();
    const release = batchWrites(stream).hold();
    for (let i = 1; i <= 5; i++) stream.write(i);
    assert.deepEqual(started, []);
    release();
    release(); // idempotent
    assert.deepEqual(started, [1, 2, 3, 4, 5]);
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(completed, [1, 2, 3, 4, 5]);
  });

  it("messages buffered behind a write in flight go on together once it completes", async () => {
    const { stream, started } = slowStream();
    batchWrites(stream);
    for (let i = 1; i <= 4; i++) stream.write(i);
    assert.deepEqual(started, [1]);
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(started, [1, 2, 3, 4]);
  });

  it("a write that finds the stream full releases the hold, so the stream drains", async () => {
    const { stream, completed } = slowStream();
    const writer = batchWrites<number>(stream);
    const release = writer.hold();
    const signal = new AbortController().signal;
    for (let i = 1; i <= EVENT_STREAM_BUFFER + 5; i++) await writer.write(i, signal);
    release();
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(completed.length, EVENT_STREAM_BUFFER + 5);
  });

  it("a failed write fails the batch once", async () => {
    const stream = new Writable({
      objectMode: true,
      write(chunk: number, _encoding, callback) {
        setImmediate(() => callback(chunk === 2 ? new Error("broken") : null));
      },
    });
    const errors: string[] = [];
    stream.on("error", (err) => errors.push(err.message));
    const release = batchWrites(stream).hold();
    for (let i = 1; i <= 3; i++) stream.write(i);
    release();
    await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(errors, ["broken"]);
  });
});
