// The agent client against a gRPC server that answers GetJob as each test scripts it: which
// failures are retried (non-terminal ones only), the deadline of each attempt, and the decoding
// of failures into LullErrors. (The agent itself is not needed to test the client's own rules.)
import { test } from "node:test";
import assert from "node:assert/strict";
import { Server, ServerCredentials, type ServiceError, type UntypedServiceImplementation } from "@grpc/grpc-js";
import { AgentService, GetJobRequest, Job } from "@lull/proto";
import { LullError, toServiceError } from "../errors.js";
import { connectAgent, type AgentApi } from "./agent-api.js";
import type { RetryPolicy } from "./retry.js";

type Answer = () => Job | LullError | "hang";

async function withServer(answers: Answer[], retry: RetryPolicy | undefined, fn: (api: AgentApi, calls: () => number) => Promise<void>): Promise<void> {
  const server = new Server();
  let calls = 0;
  const getJob = (_call: unknown, callback: (err: ServiceError | null, res?: Job) => void) => {
    const answer = answers[Math.min(calls++, answers.length - 1)]!();
    if (answer === "hang") return;
    if (answer instanceof LullError) callback(toServiceError(answer) as ServiceError);
    else callback(null, answer);
  };
  server.addService(AgentService, { getJob } as UntypedServiceImplementation);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  const api = connectAgent({ address: `127.0.0.1:${port}` }, { callTimeoutMs: 300, ...(retry ? { retry } : {}) });
  try {
    await fn(api, () => calls);
  } finally {
    api.close();
    server.forceShutdown();
  }
}

const request = GetJobRequest.fromPartial({ guestId: "demo", jobId: "j-1" });
const job = () => Job.fromPartial({ id: "j-1", guestId: "demo" });
const busy = () => new LullError("LULL_E_SHUTTING_DOWN", "agent is shutting down");
const bug = () => new LullError("LULL_E_INTERNAL", "boom");
const unknownJob = () => new LullError("LULL_E_JOB_NOT_FOUND", "no job j-1");

test("without a retry policy a failure is decoded and returned at once", async () => {
  await withServer([busy, job], undefined, async (api, calls) => {
    await assert.rejects(api.getJob(request), (e: unknown) => e instanceof LullError && e.code === "LULL_E_SHUTTING_DOWN" && e.message === "agent is shutting down");
    assert.equal(calls(), 1);
  });
});

test("non-terminal failures (shutting down, internal) are retried until the call succeeds", async () => {
  await withServer([busy, bug, job], { attempts: 3, backoffMs: 10 }, async (api, calls) => {
    assert.equal((await api.getJob(request)).id, "j-1");
    assert.equal(calls(), 3);
  });
});

test("a terminal failure is never retried", async () => {
  await withServer([unknownJob, job], { attempts: 5, backoffMs: 10 }, async (api, calls) => {
    await assert.rejects(api.getJob(request), (e: unknown) => e instanceof LullError && e.code === "LULL_E_JOB_NOT_FOUND" && e.terminal);
    assert.equal(calls(), 1);
  });
});

test("retries stop after the policy's attempts, with the last failure", async () => {
  await withServer([busy, busy, bug], { attempts: 3, backoffMs: 10 }, async (api, calls) => {
    await assert.rejects(api.getJob(request), (e: unknown) => e instanceof LullError && e.code === "LULL_E_INTERNAL");
    assert.equal(calls(), 3);
  });
});

test("each attempt has its deadline: a server that never answers is LULL_E_AGENT_UNREACHABLE", async () => {
  await withServer([() => "hang"], { attempts: 2, backoffMs: 10 }, async (api, calls) => {
    const started = Date.now();
    await assert.rejects(api.getJob(request), (e: unknown) => e instanceof LullError && e.code === "LULL_E_AGENT_UNREACHABLE" && !e.terminal);
    assert.equal(calls(), 2);
    assert.ok(Date.now() - started < 3_000, "two 300 ms deadlines, not the default 10 s");
  });
});

test("an aborted signal stops the retries", async () => {
  await withServer([busy], { attempts: 10, backoffMs: 200 }, async (api, calls) => {
    const ac = new AbortController();
    setTimeout(() => ac.abort(new Error("stop")), 50);
    await assert.rejects(api.getJob(request, { signal: ac.signal }));
    assert.equal(calls(), 1);
  });
});
