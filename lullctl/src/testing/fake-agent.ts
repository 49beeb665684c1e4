// A stand-in lull-agent for lullctl's tests: a real gRPC server on 127.0.0.1 (port 0 or a given
// port, so a test can "restart" it), jobs and persisted events in memory, and a scripted backup
// timeline. Tests drive it to break streams, restart, and fail jobs.
import { Server, ServerCredentials, status, type ServerWritableStream } from "@grpc/grpc-js";
import {
  AgentService,
  Consistency,
  EventKind,
  Phase,
  SnapshotMode,
  StackState,
  type AgentServer,
  type Event,
  type Job,
  type WatchEventsRequest,
} from "@lull/proto";
import { LullError, isTerminal, unaryHandler } from "@lull/shared";

export interface FakeAgentState {
  events: Event[];
  jobs: Map<string, Job>;
}

export function emptyJob(id: string, guestId: string): Job {
  return {
    id, guestId, phase: Phase.PHASE_QUEUED, engine: "native", mode: SnapshotMode.SNAPSHOT_MODE_COPY,
    consistency: Consistency.CONSISTENCY_UNSPECIFIED, policy: 0, idempotencyKey: "", createdAt: new Date(),
    failedIn: 0, errorCode: "", errorMessage: "", archivePath: "", archiveBytes: 0, bytesDone: 0, bytesTotal: 0,
    quiesceMs: 0, snapshotMs: 0, archiveMs: 0, totalMs: 0, stacks: [], quiesceTimeoutMs: 0, requestedBy: "",
  };
}

const unimplemented = unaryHandler(() => {
  throw new LullError("LULL_E_INTERNAL", "not implemented by the fake agent");
});

export class FakeAgent {
  readonly state: FakeAgentState;
  readonly port: number;
  /** What StartBackup does; default: creates a job and plays `runTimeline`. */
  onStartBackup: ((guestId: string, key: string) => Job) | undefined;
  private readonly watchers = new Set<{ call: ServerWritableStream<WatchEventsRequest, Event>; req: WatchEventsRequest }>();
  private readonly timers = new Set<NodeJS.Timeout>();

  private constructor(private readonly server: Server, port: number, state: FakeAgentState) {
    this.port = port;
    this.state = state;
  }

  /** Starts on `port` (0: a free one), optionally with the state of a previous instance. */
  static async start(port = 0, state: FakeAgentState = { events: [], jobs: new Map() }): Promise<FakeAgent> {
    const server = new Server();
    let agent: FakeAgent | undefined;
    const impl: AgentServer = {
      getAgentInfo: unaryHandler(() => ({
        node: "fake", version: "0.0.0-test", startedAt: new Date(), guests: [{ id: "demo", engine: "native", driver: "dir", snapshot: "copy" }],
        lastEventSeq: state.events.at(-1)?.seq ?? 0,
      })),
      startBackup: unaryHandler((req) => {
        const existing = [...state.jobs.values()].find((j) => j.idempotencyKey === req.idempotencyKey);
        if (existing) return { job: existing, created: false };
        if (req.guestId !== "demo") throw new LullError("LULL_E_UNKNOWN_GUEST", `guest ${req.guestId} is not configured`);
        const job = agent!.onStartBackup?.(req.guestId, req.idempotencyKey) ?? agent!.runTimeline(req.guestId, "done");
        job.idempotencyKey = req.idempotencyKey;
        job.requestedBy = req.requestedBy;
        return { job: { ...job }, created: true };
      }),
      getJob: unaryHandler((req) => {
        const job = state.jobs.get(req.jobId);
        if (!job || job.guestId !== req.guestId) throw new LullError("LULL_E_JOB_NOT_FOUND", `no job ${req.jobId}`);
        return job;
      }),
      listJobs: unaryHandler((req) => ({
        jobs: [...state.jobs.values()].filter((j) => (!req.guestId || j.guestId === req.guestId) && (!req.activeOnly || !isTerminal(j.phase))).reverse(),
      })),
      cancelJob: unaryHandler((req) => {
        const job = state.jobs.get(req.jobId);
        if (!job) throw new LullError("LULL_E_JOB_NOT_FOUND", `no job ${req.jobId}`);
        if (isTerminal(job.phase)) throw new LullError("LULL_E_JOB_TERMINAL", `job ${req.jobId} has ended`);
        agent!.clearTimers();
        agent!.setPhase(job, Phase.PHASE_CANCELLED, { errorCode: "LULL_E_CANCELLED", message: req.reason || "cancelled" });
        return job;
      }),
      startGroupBackup: unimplemented,
      getGroup: unimplemented,
      listGroups: unimplemented,
      cancelGroup: unimplemented,
      registerStack: unimplemented,
      unregisterStack: unimplemented,
      acknowledgeQuiesce: unimplemented,
      refuseQuiesce: unimplemented,
      reportResumed: unimplemented,
      watchEvents: (call) => {
        for (const e of state.events) if (agent!.matches(e, call.request)) call.write(e);
        const entry = { call, req: call.request };
        agent!.watchers.add(entry);
        call.on("cancelled", () => agent!.watchers.delete(entry));
      },
    };
    server.addService(AgentService, impl);
    const bound = await new Promise<number>((resolve, reject) =>
      server.bindAsync(`127.0.0.1:${port}`, ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
    );
    agent = new FakeAgent(server, bound, state);
    return agent;
  }

  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  private matches(e: Event, req: WatchEventsRequest): boolean {
    return e.seq > req.afterSeq && (!req.guestId || e.guestId === req.guestId) && (!req.jobId || e.jobId === req.jobId);
  }

  /** Persists an event and sends it to every matching watcher. */
  emit(fields: Partial<Event> & Pick<Event, "jobId" | "guestId" | "kind">): Event {
    const event: Event = {
      seq: (this.state.events.at(-1)?.seq ?? 0) + 1, at: new Date(), phase: Phase.PHASE_UNSPECIFIED,
      mode: SnapshotMode.SNAPSHOT_MODE_COPY, consistency: 0, bytesDone: 0, bytesTotal: 0, stack: "",
      stackState: 0, downtimeMs: 0, errorCode: "", message: "", ...fields,
    };
    this.state.events.push(event);
    for (const w of this.watchers) if (this.matches(event, w.req)) w.call.write(event);
    return event;
  }

  setPhase(job: Job, phase: Phase, extra: { errorCode?: string; message?: string } = {}): void {
    job.phase = phase;
    job.updatedAt = new Date();
    if (phase === Phase.PHASE_SNAPSHOTTED) job.snapshotAt = new Date();
    if (isTerminal(phase)) {
      job.finishedAt = new Date();
      job.totalMs = job.finishedAt.getTime() - (job.createdAt?.getTime() ?? 0);
    }
    if (extra.errorCode) {
      job.errorCode = extra.errorCode;
      job.errorMessage = extra.message ?? "";
    }
    this.emit({ jobId: job.id, guestId: job.guestId, kind: EventKind.EVENT_KIND_PHASE, phase, mode: job.mode,
      ...(job.snapshotAt ? { snapshotAt: job.snapshotAt } : {}), errorCode: extra.errorCode ?? "", message: extra.message ?? "" });
  }

  /** Creates a job and plays a backup: quiesce, snapshot, early resume, archive with progress, then `outcome`. */
  runTimeline(guestId: string, outcome: "done" | "failed", stepMs = 15, resumeAfterEnd = false): Job {
    const id = `j-${String(this.state.jobs.size + 1).padStart(26, "0")}`;
    const job = emptyJob(id, guestId);
    this.state.jobs.set(id, job);
    const stack = (state: StackState, downtimeMs = 0) => {
      job.stacks = [{ stack: "app", state, reason: "", downtimeMs, resumedEarly: downtimeMs > 0 }];
      this.emit({ jobId: id, guestId, kind: EventKind.EVENT_KIND_STACK, phase: job.phase, stack: "app", stackState: state, downtimeMs });
    };
    const progress = (done: number) => {
      job.bytesDone = done;
      job.bytesTotal = 3000;
      this.emit({ jobId: id, guestId, kind: EventKind.EVENT_KIND_PROGRESS, phase: job.phase, bytesDone: done, bytesTotal: 3000 });
    };
    const steps: Array<() => void> = [
      () => this.setPhase(job, Phase.PHASE_QUEUED),
      () => this.setPhase(job, Phase.PHASE_QUIESCING),
      () => stack(StackState.STACK_STATE_QUIESCED),
      () => this.setPhase(job, Phase.PHASE_SNAPSHOTTING),
      () => this.setPhase(job, Phase.PHASE_SNAPSHOTTED),
      () => (resumeAfterEnd ? undefined : stack(StackState.STACK_STATE_RESUMED, 42)),
      () => this.setPhase(job, Phase.PHASE_ARCHIVING),
      () => progress(1000),
      () => progress(2000),
      () => progress(3000),
      () => {
        if (outcome === "failed") {
          job.failedIn = Phase.PHASE_ARCHIVING;
          this.setPhase(job, Phase.PHASE_FAILED, { errorCode: "LULL_E_NO_SPACE", message: "archive dir is full" });
          return;
        }
        job.consistency = Consistency.CONSISTENCY_APP;
        job.archivePath = `/var/lib/lull/archives/${guestId}/${id}.tar.zst`;
        job.archiveBytes = 2048;
        this.setPhase(job, Phase.PHASE_DONE);
      },
      () => (resumeAfterEnd ? stack(StackState.STACK_STATE_RESUMED, 42) : undefined),
    ];
    steps[0]!();
    steps.slice(1).forEach((step, i) => {
      const timer = setTimeout(() => {
        this.timers.delete(timer);
        step();
      }, stepMs * (i + 1));
      this.timers.add(timer);
    });
    return job;
  }

  clearTimers(): void {
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
  }

  /** Ends every open event stream with UNAVAILABLE, as a flaky network would. */
  breakStreams(): void {
    for (const w of this.watchers) w.call.emit("error", { code: status.UNAVAILABLE, details: "stream broken by the test" });
    this.watchers.clear();
  }

  /** Stops at once (open streams break), like a crashed agent. */
  async stop(): Promise<void> {
    this.clearTimers();
    this.server.forceShutdown();
  }
}
