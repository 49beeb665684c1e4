// The agent's event stream as an async iterable of events that a signal ends quietly; a broken
// stream throws a LullError with its stable code. It reads WatchEventBatches (several events per
// message: a replay from an old sequence number is not held to the rate grpc-js delivers
// messages) and yields their events one by one; an agent older than that RPC answers UNIMPLEMENTED
// before any event, and the stream is then WatchEvents, one message per event.
import { status, type ClientReadableStream, type ServiceError } from "@grpc/grpc-js";
import type { AgentClient, Event, EventBatch, WatchEventsRequest } from "@lull/proto";
import { fromServiceError } from "../errors.js";

export interface WatchOptions {
  /** The server answered with its headers: the stream is open (it may deliver nothing for a while). */
  onOpen?: () => void;
}

export async function* watchEventStream(
  client: AgentClient,
  request: WatchEventsRequest,
  signal: AbortSignal,
  options: WatchOptions = {},
): AsyncGenerator<Event, void, undefined> {
  if (signal.aborted) return;
  const batches = { received: false };
  try {
    for await (const batch of messages<EventBatch>(client.watchEventBatches(request), signal, options, batches)) yield* batch.events;
    return;
  } catch (err) {
    if (batches.received || !isUnimplemented(err)) throw fromServiceError(err);
  }
  if (signal.aborted) return;
  yield* messages<Event>(client.watchEvents(request), signal, options, { received: false });
}

/** The messages of `call` until `signal` aborts; a failure as a LullError, except UNIMPLEMENTED before any message (an older agent). */
async function* messages<T>(call: ClientReadableStream<T>, signal: AbortSignal, options: WatchOptions, seen: { received: boolean }): AsyncGenerator<T, void, undefined> {
  const onAbort = () => call.cancel();
  signal.addEventListener("abort", onAbort, { once: true });
  if (options.onOpen) call.on("metadata", options.onOpen);
  try {
    for await (const message of call) {
      seen.received = true;
      yield message as T;
    }
  } catch (err) {
    if (signal.aborted) return;
    throw seen.received || !isUnimplemented(err) ? fromServiceError(err) : err;
  } finally {
    signal.removeEventListener("abort", onAbort);
    call.cancel();
  }
}

/** The status of a server that lacks the method (no Lull error is UNIMPLEMENTED). */
const isUnimplemented = (err: unknown) => (err as Partial<ServiceError> | null)?.code === status.UNIMPLEMENTED;
