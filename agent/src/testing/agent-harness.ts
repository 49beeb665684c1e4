// Component-test harness: a real agent in-process (real SQLite in a temp dir, real gRPC on
// 127.0.0.1 port 0) with an injected engine, a client, the agent's log lines as parsed JSON,
// and helpers to wait for a job and to collect events.
import { strict as assert } from "node:assert";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ServiceError } from "@grpc/grpc-js";
import {
  AcknowledgeQuiesceRequest,
  CancelJobRequest,
  GetJobRequest,
  ListJobsRequest,
  RefuseQuiesceRequest,
  RegisterStackRequest,
  ReportResumedRequest,
  StartBackupRequest,
  UnregisterStackRequest,
  type AgentClient,
  type AgentInfo,
  type Event,
  type Job,
  type ListJobsResponse,
  type QuiesceReply,
  type RegisterStackResponse,
  type ReportResumedResponse,
  type StartBackupResponse,
  type UnregisterStackResponse,
  type WatchEventsRequest,
} from "@lull/proto";
import { LullError, agentApiOf, createAgentClient, createLogger, fromServiceError, isTerminal, type Logger } from "@lull/shared";
import { startAgent, type RunningAgent } from "../agent.js";
import { agentConfigSchema, type AgentConfig } from "../config.js";
import Database from "better-sqlite3";
import type { BackupEngine } from "../engines/engine.js";

export type LogLine = Record<string, unknown> & { msg?: string };

export interface TestAgentOptions {
  /** Reuse a directory (a restart on the same database); default a new temp dir. */
  dir?: string;
  /** Guests of the config; default one `demo` guest (dir driver, copy). */
  guests?: unknown[];
  /** More config keys (quiesce, leaseTtlMs, shutdownGraceMs, ...). */
  config?: Record<string, unknown>;
  engine: BackupEngine;
}

export interface TestAgent {
  dir: string;
  config: Readonly<AgentConfig>;
  agent: RunningAgent;
  engine: BackupEngine;
  client: AgentClient;
  logs: LogLine[];
  log: Logger;
  /** The API as promises; failures are LullErrors. */
  api: TestApi;
  stop(): Promise<void>;
}

export interface TestApi {
  getAgentInfo(): Promise<AgentInfo>;
  startBackup(req: Partial<StartBackupRequest>): Promise<StartBackupResponse>;
  getJob(req: Partial<GetJobRequest>): Promise<Job>;
  listJobs(req: Partial<ListJobsRequest>): Promise<ListJobsResponse>;
  cancelJob(req: Partial<CancelJobRequest>): Promise<Job>;
  registerStack(req: Partial<RegisterStackRequest>): Promise<RegisterStackResponse>;
  unregisterStack(req: Partial<UnregisterStackRequest>): Promise<UnregisterStackResponse>;
  acknowledgeQuiesce(req: Partial<AcknowledgeQuiesceRequest>): Promise<QuiesceReply>;
  refuseQuiesce(req: Partial<RefuseQuiesceRequest>): Promise<QuiesceReply>;
  reportResumed(req: Partial<ReportResumedRequest>): Promise<ReportResumedResponse>;
}

/** The shared typed client over `client`, with requests filled with defaults (ts-proto fromPartial). */
export function testApi(client: AgentClient): TestApi {
  const api = agentApiOf(client);
  return {
    getAgentInfo: () => api.getAgentInfo(),
    startBackup: (r) => api.startBackup(StartBackupRequest.fromPartial(r)),
    getJob: (r) => api.getJob(GetJobRequest.fromPartial(r)),
    listJobs: (r) => api.listJobs(ListJobsRequest.fromPartial(r)),
    cancelJob: (r) => api.cancelJob(CancelJobRequest.fromPartial(r)),
    registerStack: (r) => api.registerStack(RegisterStackRequest.fromPartial(r)),
    unregisterStack: (r) => api.unregisterStack(UnregisterStackRequest.fromPartial(r)),
    acknowledgeQuiesce: (r) => api.acknowledgeQuiesce(AcknowledgeQuiesceRequest.fromPartial(r)),
    refuseQuiesce: (r) => api.refuseQuiesce(RefuseQuiesceRequest.fromPartial(r)),
    reportResumed: (r) => api.reportResumed(ReportResumedRequest.fromPartial(r)),
  };
}

export function testConfig(dir: string, options: Pick<TestAgentOptions, "guests" | "config"> = {}): Readonly<AgentConfig> {
  const appDir = join(dir, "app");
  for (const d of ["data", "archives", "staging", "app"]) mkdirSync(join(dir, d), { recursive: true });
  return agentConfigSchema.parse({
    node: "test-node",
    dataDir: join(dir, "data"),
    archiveDir: join(dir, "archives"),
    stagingDir: join(dir, "staging"),
    shutdownGraceMs: 2000,
    guests: options.guests ?? [{ id: "demo", driver: "dir", snapshot: "copy", volumes: [{ name: "data", path: appDir }] }],
    ...options.config,
    // Plain TCP (no certificate to make per test) unless the test gives its own `listen` (its socket
    // is still the directory's); the harness's client is the local operator on the socket.
    listen:
      options.config?.listen !== undefined
        ? { socket: join(dir, "run", "agent.sock"), ...(options.config.listen as object) }
        : { address: "127.0.0.1:0", insecure: true, socket: join(dir, "run", "agent.sock") },
  });
}

export async function startTestAgent(options: TestAgentOptions): Promise<TestAgent> {
  const dir = options.dir ?? mkdtempSync(join(tmpdir(), "lull-agent-test-"));
  const config = testConfig(dir, options);
  const logs: LogLine[] = [];
  const log = createLogger({
    name: "lull-agent",
    level: "debug",
    destination: { write: (line: string) => void logs.push(JSON.parse(line) as LogLine) },
  });
  const agent = await startAgent({ config, log, engineFor: () => options.engine });
  const client = createAgentClient({ address: `unix://${agent.socketPath}` });
  return {
    dir,
    config,
    agent,
    engine: options.engine,
    client,
    logs,
    log,
    api: testApi(client),
    async stop() {
      client.close();
      await agent.stop();
    },
  };
}

/** Runs `fn` against a fresh test agent, then stops it and removes its directory, whether `fn` passed or threw. */
export async function withTestAgent<T>(options: TestAgentOptions, fn: (t: TestAgent) => Promise<T>): Promise<T> {
  const t = await startTestAgent(options);
  try {
    return await fn(t);
  } finally {
    await t.stop();
    rmSync(t.dir, { recursive: true, force: true });
  }
}

/** Polls GetJob until `until(job)` holds; fails the test after `timeoutMs` with the last job seen. */
/** When the lease of `stack` of `guestId` runs out, as the agent's database holds it now; undefined when not registered. */
export function leaseExpiresAt(t: Pick<TestAgent, "config">, guestId: string, stack: string): number | undefined {
  // Read-only beside the running agent's connection: no migration, no pragma written (tests poll this).
  const db = new Database(join(t.config.dataDir, "agent.db"), { readonly: true, fileMustExist: true });
  try {
    const row = db.prepare("SELECT lease_expires_at FROM stacks WHERE guest_id = ? AND stack = ?").get(guestId, stack) as { lease_expires_at: number } | undefined;
    return row?.lease_expires_at;
  } finally {
    db.close();
  }
}

export async function waitForJob(t: TestAgent, guestId: string, jobId: string, until: (job: Job) => boolean, timeoutMs = 5000): Promise<Job> {
  const deadline = Date.now() + timeoutMs;
  let last: Job | undefined;
  for (;;) {
    last = await t.api.getJob({ guestId, jobId });
    if (until(last)) return last;
    if (Date.now() > deadline) assert.fail(`job ${jobId} did not reach the expected state within ${timeoutMs} ms; last: ${JSON.stringify(last)}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export const waitForEnd = (t: TestAgent, guestId: string, jobId: string, timeoutMs = 5000) =>
  waitForJob(t, guestId, jobId, (j) => isTerminal(j.phase), timeoutMs);

/** Streams WatchEvents until `until(event)` holds (inclusive); fails after `timeoutMs`. */
export function collectEvents(t: TestAgent, request: Partial<WatchEventsRequest>, until: (e: Event, all: Event[]) => boolean, timeoutMs = 5000): Promise<Event[]> {
  return new Promise<Event[]>((resolve, reject) => {
    const events: Event[] = [];
    const call = t.client.watchEvents({ guestId: "", jobId: "", afterSeq: 0, ...request });
    const timer = setTimeout(() => {
      call.cancel();
      reject(new Error(`collectEvents: no matching event within ${timeoutMs} ms; got seqs ${events.map((e) => e.seq).join(",")}`));
    }, timeoutMs);
    call.on("data", (e: Event) => {
      events.push(e);
      if (until(e, events)) {
        clearTimeout(timer);
        call.cancel();
        resolve(events);
      }
    });
    call.on("error", (err: ServiceError) => {
      clearTimeout(timer);
      if (err.code === 1) return; // CANCELLED by us
      reject(fromServiceError(err));
    });
  });
}

/** Asserts that `promise` rejects with this stable code and gRPC status. */
export async function rejectsWith(promise: Promise<unknown>, code: string, grpcStatus: number): Promise<LullError> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof LullError, `expected a LullError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    assert.equal((err.cause as ServiceError | undefined)?.code, grpcStatus, `gRPC status for ${code}`);
    return err;
  }
  return assert.fail(`expected ${code}, but the call succeeded`);
}
