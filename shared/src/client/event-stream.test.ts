// The client's event stream against gRPC servers scripted as agents: a current agent's batches come
// out as single events in order; an agent older than WatchEventBatches is read through WatchEvents;
// a failure of the batch stream is a LullError, with no second stream.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Server, ServerCredentials, type ServerWritableStream, type UntypedServiceImplementation } from "@grpc/grpc-js";
import { AgentService, Event, type EventBatch, type WatchEventsRequest } from "@lull/proto";
import { LullError, toServiceError } from "../errors.js";
import { connectAgent, type AgentApi } from "./agent-api.js";

async function withServer(implementation: UntypedServiceImplementation, fn: (api: AgentApi) => Promise<void>): Promise<void> {
  const server = new Server();
  server.addService(AgentService, implementation);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  const api = connectAgent({ address: `127.0.0.1:${port}` }, { callTimeoutMs: 1000 });
  try {
    await fn(api);
  } finally {
    api.close();
    server.forceShutdown();
  }
}

const event = (seq: number) => Event.fromPartial({ seq, guestId: "demo", message: `event ${seq}`, at: new Date(1_700_000_000_000 + seq) });
const request = { guestId: "demo", jobId: "", afterSeq: 0 };

/** The seqs the client yields until it has seen `last`. */
async function seqsUntil(api: AgentApi, last: number): Promise<number[]> {
  const stop = new AbortController();
  const seqs: number[] = [];
  for await (const e of api.watchEvents(request, stop.signal)) {
    seqs.push(e.seq);
    if (e.seq >= last) break;
  }
  stop.abort();
  return seqs;
}

test("the events of WatchEventBatches come out one by one, in order", async () => {
  const calls: string[] = [];
  const watchEventBatches = (call: ServerWritableStream<WatchEventsRequest, EventBatch>) => {
    calls.push("batches");
    call.write({ events: [event(1), event(2), event(3)] });
    call.write({ events: [event(4)] });
    call.write({ events: [event(5), event(6)] });
  };
  await withServer({ watchEventBatches }, async (api) => {
    assert.deepEqual(await seqsUntil(api, 6), [1, 2, 3, 4, 5, 6]);
    assert.deepEqual(calls, ["batches"]);
  });
});

test("an agent without WatchEventBatches (UNIMPLEMENTED) is read through WatchEvents", async () => {
  const watchEvents = (call: ServerWritableStream<WatchEventsRequest, Event>) => {
    for (const seq of [1, 2, 3]) call.write(event(seq));
  };
  await withServer({ watchEvents }, async (api) => {
    assert.deepEqual(await seqsUntil(api, 3), [1, 2, 3]);
  });
});

test("a failed batch stream is a LullError, and no WatchEvents stream is opened", async () => {
  let watchEventsCalls = 0;
  const watchEventBatches = (call: ServerWritableStream<WatchEventsRequest, EventBatch>) => {
    call.emit("error", toServiceError(new LullError("LULL_E_UNKNOWN_GUEST", "no guest demo")));
  };
  const watchEvents = () => {
    watchEventsCalls += 1;
  };
  await withServer({ watchEventBatches, watchEvents }, async (api) => {
    await assert.rejects(seqsUntil(api, 1), (e: unknown) => e instanceof LullError && e.code === "LULL_E_UNKNOWN_GUEST");
    assert.equal(watchEventsCalls, 0);
  });
});
