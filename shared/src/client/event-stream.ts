// The agent's WatchEvents stream as an async iterable that a signal ends quietly; a broken stream
// throws a LullError with its stable code.
import type { AgentClient, Event, WatchEventsRequest } from "@lull/proto";
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
  const call = client.watchEvents(request);
  const onAbort = () => call.cancel();
  signal.addEventListener("abort", onAbort, { once: true });
  if (options.onOpen) call.on("metadata", options.onOpen);
  try {
    for await (const event of call) yield event as Event;
  } catch (err) {
    if (signal.aborted) return;
    throw fromServiceError(err);
  } finally {
    signal.removeEventListener("abort", onAbort);
    call.cancel();
  }
}
