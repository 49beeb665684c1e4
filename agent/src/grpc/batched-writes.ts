// A server stream of grpc-js is a Writable that hands its messages to http2 one at a time: the
// next waits in the Writable's buffer until the previous one's http2 write has completed, which
// is a later turn of the event loop. Events that are published together (a commit often carries
// several) then leave each stream one turn apart, and on a busy agent a turn is long. The stream's
// own `_write` sends one message and may be called again before the last has completed (http2
// keeps the order), so a `_writev` that calls it for every buffered message lets the whole batch
// go to http2 at once; `hold()` corks the stream while a batch is written, so the batch reaches
// `_writev` in one piece. A write that finds the stream full releases the hold before it waits
// for `drain` (a corked stream never drains).
import type { Writable } from "node:stream";

/**
 * Events a stream may hold unsent before its writer waits for the transport to drain. grpc-js's
 * server stream is an object-mode Writable with the default high-water mark (16 messages): waiting
 * at every `false` from write() lets through at most 16 events per turn of the event loop, which
 * held a replay from the store to ~20,000 events/s with both processes mostly idle. Up to this many
 * (a few hundred KiB of small events) keeps the stream bounded, and a replay runs at the speed of
 * encoding and the socket.
 */
export const EVENT_STREAM_BUFFER = 1024;

export interface BatchedWriter<T> {
  /** Writes one message; resolves when the stream can take the next (at once unless EVENT_STREAM_BUFFER messages wait unsent). */
  write(message: T, signal: AbortSignal): Promise<void>;
  /** Corks the stream until the returned release is called. */
  hold(): () => void;
}

/** A writer of `stream` that passes every buffered message on at once. */
export function batchWrites<T>(stream: Writable): BatchedWriter<T> {
  if (!stream._writev) {
    stream._writev = function (this: Writable, chunks, callback) {
      let left = chunks.length;
      let failure: Error | null | undefined;
      for (const { chunk, encoding } of chunks) {
        this._write(chunk, encoding, (err) => {
          failure ??= err;
          if (--left === 0) callback(failure);
        });
      }
    };
  }
  let holds = 0;
  const releaseAll = () => {
    for (; holds > 0; holds--) stream.uncork();
  };
  return {
    write(message, signal) {
      stream.write(message);
      if (stream.writableLength < EVENT_STREAM_BUFFER) return Promise.resolve();
      releaseAll();
      return new Promise<void>((resolve) => {
        const done = () => {
          stream.off("drain", done);
          signal.removeEventListener("abort", done);
          resolve();
        };
        stream.once("drain", done);
        signal.addEventListener("abort", done, { once: true });
      });
    },
    hold() {
      stream.cork();
      holds += 1;
      const at = holds;
      let held = true;
      return () => {
        if (!held) return;
        held = false;
        // Already released by a write that had to wait.
        if (holds < at) return;
        holds -= 1;
        stream.uncork();
      };
    },
  };
}
