// An in-process fake of lull-agent for the controller's tests: the real gRPC service (AgentServer)
// on 127.0.0.1, port 0, with jobs whose phases the test scripts (`setPhase`). It keeps the parts of
// the agent's contract a controller sees: leases (a stack whose lease is alive when a job enters
// `quiescing` becomes PENDING), the quiesce barrier's stack states, persisted events with a
// monotonic seq replayed after `after_seq`, stable error codes. It does no backup work.
import { Metadata, Server, ServerCredentials, status, type ServerWritableStream, type ServiceError } from "@grpc/grpc-js";
import {
  AgentService,
  EventKind,
  Job,
  Phase,
  SnapshotMode,
  StackState,
  type AgentServer,
  type Event,
  type StackStatus,
  type WatchEventsRequest,
} from "@lull/proto";
import { LullError, isTerminal, unaryHandler } from "@lull/shared";

export interface FakeCall {
  method: string;
  request: unknown;
  at: number;
}

export interface SeedJob {
  id?: string;
  guestId?: string;
  phase?: Phase;
  mode?: SnapshotMode;
  stacks?: Record<string, StackState>;
  snapshotAt?: Date;
}

export class FakeAgent {
  readonly calls: FakeCall[] = [];
  readonly jobs = new Map<string, Job>();
  readonly events: Event[] = [];
  /** stack → lease expiry (ms since the epoch) and controller id. */
  readonly leases = new Map<string, { controllerId: string; expiresAt: number }>();
  leaseTtlMs = 15_000;
  /** Unary methods (`getJob`, ...) that never answer: a blackholed agent. */
  readonly hang = new Set<string>();
  /** Unary methods whose next call fails once with UNAVAILABLE (a transient outage). */
  readonly failNext = new Set<string>();
  private streams = new Set<ServerWritableStream<WatchEventsRequest, Event>>();
  private streamsEnabled = true;
  private nextJob = 1;

  private constructor(
    private readonly server: Server,
    readonly address: string,
    readonly guestId: string,
  ) {}

  static async start(options: { guestId?: string; address?: string } = {}): Promise<FakeAgent> {
    const server = new Server();
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync(options.address ?? "127.0.0.1:0", ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
    );
    const agent = new FakeAgent(server, `127.0.0.1:${port}`, options.guestId ?? "demo");
    server.addService(AgentService, agent.handlers());
    return agent;
  }

  /** A job of the guest, queued unless seeded otherwise. */
  createJob(seed: SeedJob = {}): Job {
    const id = seed.id ?? `j-${String(this.nextJob++).padStart(26, "0")}`;
    const now = new Date();
    const job = Job.fromPartial({
      id,
      guestId: seed.guestId ?? this.guestId,
      phase: seed.phase ?? Phase.PHASE_QUEUED,
      engine: "native",
      mode: seed.mode ?? SnapshotMode.SNAPSHOT_MODE_SNAPSHOT,
      createdAt: now,
      updatedAt: now,
      ...(seed.snapshotAt ? { snapshotAt: seed.snapshotAt } : {}),
      stacks: Object.entries(seed.stacks ?? {}).map(([stack, state]) => ({ stack, state })),
    });
    this.jobs.set(id, job);
    this.emit({ jobId: id, guestId: job.guestId, kind: EventKind.EVENT_KIND_PHASE, phase: job.phase, mode: job.mode });
    return job;
  }

  /** Moves a job to `phase` and emits the event; `quiescing` puts every leased stack in PENDING. */
  setPhase(jobId: string, phase: Phase, extra: Partial<Job> = {}): Job {
    const job = this.mustJob(jobId);
    const now = new Date();
    Object.assign(job, extra, { phase, updatedAt: now });
    if (phase === Phase.PHASE_QUIESCING) {
      for (const [stack, lease] of this.leases) {
        if (lease.expiresAt > Date.now() && !job.stacks.some((s) => s.stack === stack)) {
          job.stacks.push({ stack, state: StackState.STACK_STATE_PENDING, reason: "", downtimeMs: 0, resumedEarly: false });
        }
      }
    }
    if (phase === Phase.PHASE_SNAPSHOTTED && job.snapshotAt === undefined) job.snapshotAt = now;
    if (isTerminal(phase)) job.finishedAt = now;
    this.emit({ jobId, guestId: job.guestId, kind: EventKind.EVENT_KIND_PHASE, phase, mode: job.mode, ...(job.snapshotAt ? { snapshotAt: job.snapshotAt } : {}) });
    return job;
  }

  job(jobId: string): Job {
    return this.mustJob(jobId);
  }

  stack(jobId: string, stack: string): StackStatus | undefined {
    return this.mustJob(jobId).stacks.find((s) => s.stack === stack);
  }

  callsOf(method: string): FakeCall[] {
    return this.calls.filter((c) => c.method === method);
  }

  /** Polls `predicate` every 10 ms until it holds; rejects naming `what` after `timeoutMs`. */
  async waitFor(predicate: () => boolean, what: string, timeoutMs = 5_000): Promise<void> {
    const until = Date.now() + timeoutMs;
    while (!predicate()) {
      if (Date.now() > until) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  waitForStack(jobId: string, stack: string, state: StackState, timeoutMs = 5_000): Promise<void> {
    return this.waitFor(() => this.stack(jobId, stack)?.state === state, `stack ${stack} of ${jobId} in state ${StackState[state]}`, timeoutMs);
  }

  /** false: every open WatchEvents stream fails with UNAVAILABLE and new ones are refused (unary calls still work). */
  setStreams(enabled: boolean): void {
    this.streamsEnabled = enabled;
    if (!enabled) {
      for (const s of this.streams) s.emit("error", { code: status.UNAVAILABLE, details: "stream cut by the test" });
      this.streams.clear();
    }
  }

  /** Kills the server at once: the agent becomes unreachable. */
  kill(): void {
    for (const s of this.streams) s.destroy();
    this.streams.clear();
    this.server.forceShutdown();
  }

  async stop(): Promise<void> {
    this.kill();
  }

  private mustJob(jobId: string): Job {
    const job = this.jobs.get(jobId);
    if (!job) throw new LullError("LULL_E_JOB_NOT_FOUND", `no job ${jobId}`);
    return job;
  }

  private jobOfGuest(guestId: string, jobId: string): Job {
    const job = this.mustJob(jobId);
    if (job.guestId !== guestId) throw new LullError("LULL_E_JOB_NOT_FOUND", `no job ${jobId} for guest ${guestId}`);
    return job;
  }

  private emit(partial: Partial<Event>): void {
    const event: Event = {
      seq: this.events.length + 1,
      at: new Date(),
      jobId: "",
      guestId: "",
      kind: EventKind.EVENT_KIND_UNSPECIFIED,
      phase: Phase.PHASE_UNSPECIFIED,
      mode: SnapshotMode.SNAPSHOT_MODE_UNSPECIFIED,
      consistency: 0,
      bytesDone: 0,
      bytesTotal: 0,
      stack: "",
      stackState: StackState.STACK_STATE_UNSPECIFIED,
      downtimeMs: 0,
      errorCode: "",
      message: "",
      ...partial,
    };
    this.events.push(event);
    for (const s of this.streams) if (matches(s.request, event)) s.write(event);
  }

  private setStack(job: Job, stack: string, patch: Partial<StackStatus>, from?: StackState[]): void {
    const entry = job.stacks.find((s) => s.stack === stack);
    if (!entry) throw new LullError("LULL_E_STACK_NOT_REGISTERED", `stack ${stack} is not part of job ${job.id}`);
    if (from && !from.includes(entry.state)) {
      throw new LullError("LULL_E_WRONG_PHASE", `stack ${stack} is ${StackState[entry.state]}`);
    }
    Object.assign(entry, patch);
    job.updatedAt = new Date();
    this.emit({ jobId: job.id, guestId: job.guestId, kind: EventKind.EVENT_KIND_STACK, phase: job.phase, stack, stackState: entry.state, downtimeMs: entry.downtimeMs });
  }

  private record(method: string, request: unknown): void {
    this.calls.push({ method, request, at: Date.now() });
  }

  private handlers(): AgentServer {
    const unary = <Req, Res>(method: string, fn: (req: Req) => Res) =>
      unaryHandler<Req, Res>((req) => {
        this.record(method, req);
        if (this.hang.has(method)) return new Promise<Res>(() => undefined);
        if (this.failNext.delete(method)) throw new LullError("LULL_E_SHUTTING_DOWN", `${method}: injected transient failure`);
        return fn(req);
      });
    return {
      getAgentInfo: unary("getAgentInfo", () => ({ node: "fake", version: "0.0.0", startedAt: new Date(), guests: [], lastEventSeq: this.events.length })),
      startBackup: unary("startBackup", (): never => {
        throw new LullError("LULL_E_INVALID_ARGUMENT", "the fake agent's jobs are created by the test");
      }),
      getJob: unary("getJob", (req: { guestId: string; jobId: string }) => this.jobOfGuest(req.guestId, req.jobId)),
      listJobs: unary("listJobs", (req: { guestId: string; activeOnly: boolean }) => ({
        jobs: [...this.jobs.values()].filter((j) => (!req.guestId || j.guestId === req.guestId) && (!req.activeOnly || !isTerminal(j.phase))),
      })),
      cancelJob: unary("cancelJob", (req: { guestId: string; jobId: string }) => this.setPhase(this.jobOfGuest(req.guestId, req.jobId).id, Phase.PHASE_CANCELLED)),
      registerStack: unary("registerStack", (req: { stack: string; controllerId: string; leaseTtlMs: number }) => {
        const ttl = req.leaseTtlMs || this.leaseTtlMs;
        this.leases.set(req.stack, { controllerId: req.controllerId, expiresAt: Date.now() + ttl });
        const active = [...this.jobs.values()].find((j) => j.guestId === this.guestId && !isTerminal(j.phase));
        return { leaseTtlMs: ttl, lastEventSeq: this.events.length, ...(active ? { activeJob: active } : {}) };
      }),
      unregisterStack: unary("unregisterStack", (req: { stack: string }) => {
        this.leases.delete(req.stack);
        return {};
      }),
      acknowledgeQuiesce: unary("acknowledgeQuiesce", (req: { guestId: string; jobId: string; stack: string; alreadyStopped?: boolean }) => {
        const job = this.jobOfGuest(req.guestId, req.jobId);
        if (job.phase !== Phase.PHASE_QUIESCING) throw new LullError("LULL_E_WRONG_PHASE", `job ${job.id} is not quiescing`);
        const state = req.alreadyStopped ? StackState.STACK_STATE_LEFT_STOPPED : StackState.STACK_STATE_QUIESCED;
        this.setStack(job, req.stack, { state, acknowledgedAt: new Date() }, [StackState.STACK_STATE_PENDING, state]);
        return { job };
      }),
      refuseQuiesce: unary("refuseQuiesce", (req: { guestId: string; jobId: string; stack: string; reason: string }) => {
        const job = this.jobOfGuest(req.guestId, req.jobId);
        if (job.phase !== Phase.PHASE_QUIESCING) throw new LullError("LULL_E_WRONG_PHASE", `job ${job.id} is not quiescing`);
        this.setStack(job, req.stack, { state: StackState.STACK_STATE_REFUSED, reason: req.reason });
        return { job };
      }),
      reportResumed: unary("reportResumed", (req: { guestId: string; jobId: string; stack: string; downtimeMs: number; early: boolean; resumedAt?: Date | undefined }) => {
        const job = this.jobOfGuest(req.guestId, req.jobId);
        this.setStack(job, req.stack, {
          state: StackState.STACK_STATE_RESUMED,
          downtimeMs: req.downtimeMs,
          resumedEarly: req.early,
          resumedAt: req.resumedAt ?? new Date(),
        });
        return {};
      }),
      startGroupBackup: unary("startGroupBackup", (): never => {
        throw new LullError("LULL_E_INVALID_ARGUMENT", "the fake agent runs no group backups");
      }),
      getGroup: unary("getGroup", (): never => {
        throw new LullError("LULL_E_GROUP_NOT_FOUND", "the fake agent has no group runs");
      }),
      listGroups: unary("listGroups", () => ({ groups: [], configured: [] })),
      cancelGroup: unary("cancelGroup", (): never => {
        throw new LullError("LULL_E_GROUP_NOT_FOUND", "the fake agent has no group runs");
      }),
      watchEvents: (call: ServerWritableStream<WatchEventsRequest, Event>) => {
        this.record("watchEvents", call.request);
        if (!this.streamsEnabled) {
          call.emit("error", { code: status.UNAVAILABLE, details: "streams disabled by the test" } satisfies Partial<ServiceError>);
          return;
        }
        call.sendMetadata(new Metadata());
        for (const e of this.events) if (e.seq > call.request.afterSeq && matches(call.request, e)) call.write(e);
        this.streams.add(call);
        call.on("cancelled", () => this.streams.delete(call));
        call.on("close", () => this.streams.delete(call));
      },
    };
  }
}

function matches(req: WatchEventsRequest, e: Event): boolean {
  return (!req.guestId || req.guestId === e.guestId) && (!req.jobId || req.jobId === e.jobId);
}
