// A small promise API over the agent's gRPC client for tests, demo and bench, plus helpers that
// wait for a job's phase and collect events.
import { randomUUID } from "node:crypto";
import {
  EventKind,
  Phase,
  QuiescePolicy,
  type AgentClient,
  type AgentInfo,
  type Event,
  type Job,
  type StartBackupResponse,
  type WatchEventsRequest,
} from "@lull/proto";
import { connectAgent, fromServiceError, isTerminal, phaseName, type AgentApi, type AgentTlsTrust } from "@lull/shared";
import { sleep } from "./temp.js";

export interface BackupOptions {
  idempotencyKey?: string;
  policy?: QuiescePolicy;
  quiesceTimeoutMs?: number;
  requestedBy?: string;
}

export interface TestAgentClient {
  readonly raw: AgentClient;
  /** The agent's typed client (every RPC; the helpers below are built on it). */
  readonly api: AgentApi;
  info(): Promise<AgentInfo>;
  startBackup(guestId: string, options?: BackupOptions): Promise<StartBackupResponse>;
  getJob(guestId: string, jobId: string): Promise<Job>;
  listJobs(guestId?: string, activeOnly?: boolean): Promise<Job[]>;
  cancel(guestId: string, jobId: string, reason?: string): Promise<Job>;
  /** Polls GetJob until `done(job)` holds; rejects after `timeoutMs` with the job's last phase. */
  waitForJob(guestId: string, jobId: string, done: (job: Job) => boolean, timeoutMs: number): Promise<Job>;
  /** Polls until the job is done, failed or cancelled. */
  waitForEnd(guestId: string, jobId: string, timeoutMs: number): Promise<Job>;
  /** Starts a backup and waits for its end. */
  backup(guestId: string, timeoutMs: number, options?: BackupOptions): Promise<Job>;
  /** Events from WatchEvents until `until(event)` holds (inclusive) or `timeoutMs` passes (rejects). */
  collectEvents(request: Partial<WatchEventsRequest>, until: (event: Event) => boolean, timeoutMs: number): Promise<Event[]>;
  close(): void;
}

/** `address` is `unix:///…` (the local operator socket) or `host:port` with `auth` (a token, the pinned CA). */
export function connectTestClient(address: string, callTimeoutMs = 10_000, auth: { token?: string; tls?: AgentTlsTrust } = {}): TestAgentClient {
  const agent = connectAgent({ address, token: auth.token, tls: auth.tls }, { callTimeoutMs });
  const raw = agent.raw;
  const api: TestAgentClient = {
    raw,
    api: agent,
    info: () => agent.getAgentInfo(),
    startBackup: (guestId, o = {}) =>
      agent.startBackup({
        guestId,
        idempotencyKey: o.idempotencyKey ?? `test-${randomUUID()}`,
        policy: o.policy ?? QuiescePolicy.QUIESCE_POLICY_UNSPECIFIED,
        quiesceTimeoutMs: o.quiesceTimeoutMs ?? 0,
        requestedBy: o.requestedBy ?? "lull-test",
      }),
    getJob: (guestId, jobId) => agent.getJob({ guestId, jobId }),
    listJobs: async (guestId = "", activeOnly = false) => (await agent.listJobs({ guestId, activeOnly, limit: 0 })).jobs,
    cancel: (guestId, jobId, reason = "") => agent.cancelJob({ guestId, jobId, reason }),
    async waitForJob(guestId, jobId, done, timeoutMs) {
      const deadline = Date.now() + timeoutMs;
      let job = await api.getJob(guestId, jobId);
      while (!done(job)) {
        if (Date.now() >= deadline) {
          throw new Error(`job ${jobId} still in ${phaseName(job.phase)} after ${timeoutMs} ms`);
        }
        await sleep(50);
        job = await api.getJob(guestId, jobId);
      }
      return job;
    },
    waitForEnd: (guestId, jobId, timeoutMs) => api.waitForJob(guestId, jobId, (j) => isTerminal(j.phase), timeoutMs),
    async backup(guestId, timeoutMs, options) {
      const { job } = await api.startBackup(guestId, options);
      if (!job) throw new Error("StartBackup returned no job");
      return api.waitForEnd(guestId, job.id, timeoutMs);
    },
    collectEvents(request, until, timeoutMs) {
      return new Promise<Event[]>((resolve, reject) => {
        const events: Event[] = [];
        const call = raw.watchEvents({ guestId: "", jobId: "", afterSeq: 0, ...request });
        const timer = setTimeout(() => {
          call.cancel();
          reject(new Error(`no matching event within ${timeoutMs} ms; got ${events.map((e) => `#${e.seq} ${phaseName(e.phase)}`).join(", ")}`));
        }, timeoutMs);
        call.on("data", (event: Event) => {
          events.push(event);
          if (until(event)) {
            clearTimeout(timer);
            call.cancel();
            resolve(events);
          }
        });
        // After resolve, the cancelled call's error is ignored (a settled promise stays settled).
        call.on("error", (err) => {
          clearTimeout(timer);
          reject(fromServiceError(err));
        });
      });
    },
    close: () => agent.close(),
  };
  return api;
}

/** Phases of a job's PHASE events in order, as names (`["queued","quiescing",...]`). */
export function phaseSequence(events: readonly Event[]): string[] {
  return events.filter((e) => e.kind === EventKind.EVENT_KIND_PHASE).map((e) => phaseName(e.phase));
}

export const isDone = (job: Job) => job.phase === Phase.PHASE_DONE;
