// The controller's connection to its node's agent: the unary calls it makes (every one with an
// explicit deadline), the stack's lease (RegisterStack, renewed at a third of its TTL), and the
// WatchEvents stream of its guest, resumed from the last sequence seen. While the stream is broken
// the link says so (`onStreamState(false)`) and the loop polls ListJobs/GetJob instead.
//
// Where the agent says so (RegisterStackResponse.stream_keeps_lease), the stream holds the lease
// (hold_lease): the agent renews it while the stream is open, and this link makes no renewal calls
// meanwhile — a node with many stacks is spared a call per stack every few seconds. When that
// stream ends, the lease is renewed by call at once, and so on until a stream holds it again.
import { readFileSync, statSync } from "node:fs";
import type { Event, Job, RegisterStackResponse } from "@lull/proto";
import { LullError, TOKEN_PATTERN, concernsStack, connectAgent, fromServiceError, leaseRenewalInterval, type AgentApi as AgentCalls, type Clock, type Logger } from "@lull/shared";
import type { ControllerConfig } from "./config.js";

/** What the reconciler needs from the agent (AgentLink is the gRPC implementation). */
export interface AgentApi {
  getJob(jobId: string, signal?: AbortSignal): Promise<Job>;
  listActiveJobs(signal?: AbortSignal): Promise<Job[]>;
  acknowledge(jobId: string, stoppedAt: number, signal?: AbortSignal): Promise<void>;
  /** Acknowledges a stack that was already stopped when the quiesce began (left as it is). */
  acknowledgeLeftStopped(jobId: string, signal?: AbortSignal): Promise<void>;
  refuse(jobId: string, reason: string, signal?: AbortSignal): Promise<void>;
  reportResumed(report: ResumeReport, signal?: AbortSignal): Promise<void>;
}

export interface ResumeReport {
  jobId: string;
  downtimeMs: number;
  resumedAt: number;
  early: boolean;
  /** Outcome of the post steps (./quiesce/outcome.ts); undefined when there were none. */
  postStep?: string | undefined;
}

export interface AgentLinkOptions {
  /** The agent's client; its deadline per call is the config's `agent.callTimeoutMs`. */
  api: AgentCalls;
  guestId: string;
  stack: string;
  controllerId: string;
  leaseTtlMs: number;
  pollIntervalMs: number;
  clock: Clock;
  log: Logger;
}

export interface WatchHandlers {
  /** An event of this guest arrived: something changed, look again. */
  onEvent(event: Event): void;
  /** The stream is (again) delivering, or is broken and polling should take over. */
  onStreamState(healthy: boolean): void;
}

const swallow = () => undefined;

/** Waits for `p` to settle, or for `signal` to abort. */
function untilSettledOrAborted(p: Promise<unknown>, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise<void>((resolve) => {
    const done = () => {
      signal.removeEventListener("abort", done);
      resolve();
    };
    signal.addEventListener("abort", done, { once: true });
    p.then(done, done);
  });
}

function readConfigFile(path: string, key: string, log: Logger, secret: boolean): string {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
    if (secret && (statSync(path).mode & 0o077) !== 0) log.warn({ key, path }, "credential file is readable by other users; chmod 600 it");
  } catch (err) {
    throw new LullError("LULL_E_CONFIG_INVALID", `${key}: cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? "error"}`);
  }
  return text.trim();
}

/**
 * The client of the agent as the config describes it: TLS pinned to `agent.tls` (fingerprint
 * and/or CA file), the guest's token on every call, `agent.callTimeoutMs` as each call's deadline.
 * Files are read once, here; the token is never logged.
 */
export function createAgentLinkClient(agent: Readonly<ControllerConfig["agent"]>, log: Logger): AgentCalls {
  const token = agent.token ?? (agent.tokenFile !== undefined ? readConfigFile(agent.tokenFile, "agent.tokenFile", log, true) : undefined);
  if (token !== undefined && !TOKEN_PATTERN.test(token)) {
    throw new LullError("LULL_E_CONFIG_INVALID", "agent.tokenFile: the file does not hold a token as `lull-agent token create` prints it");
  }
  const tls = agent.tls
    ? {
        fingerprint: agent.tls.fingerprint,
        caPem: agent.tls.ca !== undefined ? readConfigFile(agent.tls.ca, "agent.tls.ca", log, false) : undefined,
      }
    : undefined;
  if (!tls && !agent.address.startsWith("unix:")) {
    log.warn({ address: agent.address }, "agent link is plain TCP: set agent.tls.fingerprint to pin the agent's certificate");
  }
  return connectAgent({ address: agent.address, tls, token }, { callTimeoutMs: agent.callTimeoutMs });
}

export class AgentLink implements AgentApi {
  /** Highest event sequence seen; the stream resumes after it. Undefined until the agent told us. */
  lastSeq: number | undefined;
  private readonly o: AgentLinkOptions;
  private registered = false;
  /** The agent's last registration reply said a stream may hold the lease. */
  private streamKeepsLease = false;
  /** While an open stream holds the lease: settles when that stream ends. */
  private holdingStream: Promise<void> | undefined;
  /** Settles after keepLease's first registration attempt: the first stream then knows whether to hold the lease. */
  private firstRegistration: Promise<void> | undefined;

  constructor(options: AgentLinkOptions) {
    this.o = options;
  }

  private get api(): AgentCalls {
    return this.o.api;
  }

  getJob(jobId: string, signal?: AbortSignal): Promise<Job> {
    return this.api.getJob({ guestId: this.o.guestId, jobId }, { signal });
  }

  async listActiveJobs(signal?: AbortSignal): Promise<Job[]> {
    const req = { guestId: this.o.guestId, activeOnly: true, limit: 0 };
    const res = await this.api.listJobs(req, { signal });
    return res.jobs;
  }

  async acknowledge(jobId: string, stoppedAt: number, signal?: AbortSignal): Promise<void> {
    const req = { guestId: this.o.guestId, jobId, stack: this.o.stack, stoppedAt: new Date(stoppedAt), alreadyStopped: false };
    await this.api.acknowledgeQuiesce(req, { signal });
  }

  async acknowledgeLeftStopped(jobId: string, signal?: AbortSignal): Promise<void> {
    const req = { guestId: this.o.guestId, jobId, stack: this.o.stack, alreadyStopped: true };
    await this.api.acknowledgeQuiesce(req, { signal });
  }

  async refuse(jobId: string, reason: string, signal?: AbortSignal): Promise<void> {
    const req = { guestId: this.o.guestId, jobId, stack: this.o.stack, reason: reason.slice(0, 1024) };
    await this.api.refuseQuiesce(req, { signal });
  }

  async reportResumed(report: ResumeReport, signal?: AbortSignal): Promise<void> {
    const req = {
      guestId: this.o.guestId,
      jobId: report.jobId,
      stack: this.o.stack,
      downtimeMs: Math.max(0, Math.round(report.downtimeMs)),
      resumedAt: new Date(report.resumedAt),
      early: report.early,
      ...(report.postStep !== undefined ? { postStep: report.postStep } : {}),
    };
    await this.api.reportResumed(req, { signal });
  }

  register(signal?: AbortSignal): Promise<RegisterStackResponse> {
    const req = { guestId: this.o.guestId, stack: this.o.stack, controllerId: this.o.controllerId, leaseTtlMs: this.o.leaseTtlMs };
    return this.api.registerStack(req, { signal });
  }

  async unregister(): Promise<void> {
    const req = { guestId: this.o.guestId, stack: this.o.stack, controllerId: this.o.controllerId };
    await this.api.unregisterStack(req);
  }

  /** The last register or renewal of the stack's lease reached the agent and was accepted. */
  get reachable(): boolean {
    return this.registered;
  }

  /**
   * Registers the stack and renews the lease until `signal` aborts: at a third of its TTL, or —
   * while a stream holds the lease and the agent's last reply said it keeps leases by stream —
   * once that stream ends.
   */
  async keepLease(signal: AbortSignal, onRegistered: (res: RegisterStackResponse) => void): Promise<void> {
    let settleFirst = () => {};
    this.firstRegistration = new Promise<void>((resolve) => (settleFirst = resolve));
    while (!signal.aborted) {
      let waitMs: number;
      try {
        const res = await this.register(signal);
        const ttl = res.leaseTtlMs > 0 ? res.leaseTtlMs : this.o.leaseTtlMs;
        if (!this.registered) this.o.log.info({ leaseTtlMs: ttl, controllerId: this.o.controllerId, streamKeepsLease: res.streamKeepsLease }, "stack registered");
        this.registered = true;
        this.streamKeepsLease = res.streamKeepsLease;
        if (this.lastSeq === undefined) this.lastSeq = res.lastEventSeq;
        onRegistered(res);
        waitMs = leaseRenewalInterval(ttl);
      } catch (err) {
        if (signal.aborted) break;
        if (this.registered) this.o.log.warn({ err: fromServiceError(err).message }, "renewing the stack's lease failed");
        else this.o.log.warn({ err: fromServiceError(err).message }, "registering the stack failed");
        this.registered = false;
        waitMs = Math.max(100, Math.min(1_000, Math.floor(this.o.leaseTtlMs / 3)));
      }
      settleFirst();
      // A stream that holds the lease renews it; the next call is made when that stream ends.
      const holding = this.registered && this.streamKeepsLease ? this.holdingStream : undefined;
      if (holding) await untilSettledOrAborted(holding, signal);
      else await this.o.clock.sleep(waitMs, signal).catch(swallow);
    }
    settleFirst();
  }

  /** Follows the guest's events until `signal` aborts; reconnects after `pollIntervalMs` when the stream breaks. */
  async watch(handlers: WatchHandlers, signal: AbortSignal): Promise<void> {
    if (this.firstRegistration) await untilSettledOrAborted(this.firstRegistration, signal);
    while (!signal.aborted) {
      try {
        if (this.lastSeq === undefined) {
          const info = await this.api.getAgentInfo({}, { signal });
          this.lastSeq = info.lastEventSeq;
        }
        await this.streamOnce(handlers, signal);
        if (!signal.aborted) this.o.log.warn({ lastSeq: this.lastSeq }, "event stream ended — polling");
      } catch (err) {
        if (!signal.aborted) this.o.log.warn({ err: fromServiceError(err).message, lastSeq: this.lastSeq }, "event stream broken — polling");
      }
      if (signal.aborted) break;
      handlers.onStreamState(false);
      await this.o.clock.sleep(this.o.pollIntervalMs, signal).catch(swallow);
    }
  }

  private async streamOnce(handlers: WatchHandlers, signal: AbortSignal): Promise<void> {
    // Also while the last registration call failed (an agent that restarts): the hold registers the
    // stack when the stream opens. An agent that turns out not to keep leases by stream says so in
    // its next registration reply, and the calls go on.
    const hold = this.streamKeepsLease ? { stack: this.o.stack, controllerId: this.o.controllerId, leaseTtlMs: this.o.leaseTtlMs } : undefined;
    // for_stack: only what this controller acts on (its own stack's STACK events, no PROGRESS);
    // an agent that predates it sends everything, and the check below drops the rest.
    const request = { guestId: this.o.guestId, jobId: "", afterSeq: this.lastSeq ?? 0, forStack: this.o.stack, ...(hold ? { holdLease: hold } : {}) };
    let ended = () => {};
    const onOpen = () => {
      handlers.onStreamState(true);
      if (hold && this.holdingStream === undefined) this.holdingStream = new Promise<void>((resolve) => (ended = resolve));
    };
    try {
      for await (const event of this.api.watchEvents(request, signal, { onOpen })) {
        handlers.onStreamState(true);
        if (this.lastSeq === undefined || event.seq > this.lastSeq) this.lastSeq = event.seq;
        if (event.guestId === this.o.guestId && concernsStack(event, this.o.stack)) handlers.onEvent(event);
      }
    } finally {
      if (hold) {
        this.holdingStream = undefined;
        ended();
      }
    }
  }
}
