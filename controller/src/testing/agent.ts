// The real agent for the controller's tests (@lull/agent/testing: real SQLite, real gRPC) with a
// cued engine, so a test drives a real job's phases; a TCP relay to its socket that `kill()` takes
// away (the agent becomes unreachable, as a dead node or a cut network would make it); and the
// client a controller under test is given, which records every call and lets a test make calls
// hang, fail once, or break the event stream.
import { Phase, SnapshotMode, StackState, type Job, type StackStatus } from "@lull/proto";
import { LullError, connectAgent, isTerminal, type AgentApi, type ErrorCode } from "@lull/shared";
import { CuedEngine, SocketRelay, leaseExpiresAt, startTestAgent, waitUntil, type TestAgent } from "@lull/agent/testing";
import { AgentFaults } from "./faulty-api.js";

export const GUEST = "demo";

const RANK: Partial<Record<Phase, number>> = {
  [Phase.PHASE_QUEUED]: 0,
  [Phase.PHASE_QUIESCING]: 1,
  [Phase.PHASE_SNAPSHOTTING]: 2,
  [Phase.PHASE_SNAPSHOTTED]: 3,
  [Phase.PHASE_ARCHIVING]: 4,
};
const rank = (phase: Phase) => (isTerminal(phase) ? 5 : (RANK[phase] ?? 0));

export interface SeedJob {
  phase?: Phase;
  mode?: SnapshotMode;
  /** The stack's state a crashed controller left: PENDING (not acknowledged) or QUIESCED. */
  app?: StackState.STACK_STATE_PENDING | StackState.STACK_STATE_QUIESCED;
}

export interface Failure {
  errorCode: ErrorCode;
  errorMessage: string;
}

export class ControllerTestAgent {
  readonly faults = new AgentFaults();

  private constructor(
    readonly t: TestAgent,
    readonly engine: CuedEngine,
    private readonly relay: SocketRelay,
  ) {}

  static async start(): Promise<ControllerTestAgent> {
    const engine = new CuedEngine();
    const t = await startTestAgent({ engine, config: { quiesce: { timeoutMs: 60_000 } } });
    const relay = await SocketRelay.start(t.agent.socketPath as string);
    return new ControllerTestAgent(t, engine, relay);
  }

  /** What a controller is pointed at (its `agent.address`): the relay to the agent. */
  get address(): string {
    return this.relay.address;
  }

  /** A client for a controller under test, its calls recorded and its faults injected (`faults`). */
  client(callTimeoutMs: number): AgentApi {
    return this.faults.wrap(connectAgent({ address: this.relay.address }, { callTimeoutMs }), callTimeoutMs);
  }

  /** Starts a backup of the guest; its engine waits for `to` before each step. */
  async createJob(seed: Pick<SeedJob, "mode"> = {}): Promise<Job> {
    this.engine.mode = seed.mode ?? SnapshotMode.SNAPSHOT_MODE_SNAPSHOT;
    const { job } = await this.t.api.startBackup({ guestId: GUEST });
    return job as Job;
  }

  /** Lets the job go on to `phase` (failed: with `failure`) and waits until the agent has it there. */
  async to(jobId: string, phase: Phase, failure?: Failure): Promise<Job> {
    if (phase === Phase.PHASE_FAILED) {
      this.engine.advance(jobId, phase, new LullError(failure?.errorCode ?? "LULL_E_INTERNAL", failure?.errorMessage ?? "failed by the test"));
    } else this.engine.advance(jobId, phase);
    let job = await this.job(jobId);
    await waitUntil(async () => rank((job = await this.job(jobId)).phase) >= rank(phase), 10_000, `job ${jobId} in ${Phase[phase]}`);
    return job;
  }

  /**
   * A job as a controller that crashed left it: the stack `app` registered by that controller,
   * the backup started and taken to `phase`, the stack acknowledged on the way when `app` is QUIESCED.
   */
  async seedJob(seed: SeedJob = {}): Promise<Job> {
    await this.t.api.registerStack({ guestId: GUEST, stack: "app", controllerId: "crashed-controller", leaseTtlMs: 600_000 });
    const job = await this.createJob(seed);
    await this.to(job.id, Phase.PHASE_QUIESCING);
    await this.waitForStack(job.id, "app", StackState.STACK_STATE_PENDING);
    if (seed.app === StackState.STACK_STATE_QUIESCED) await this.t.api.acknowledgeQuiesce({ guestId: GUEST, jobId: job.id, stack: "app" });
    const phase = seed.phase ?? Phase.PHASE_QUIESCING;
    return phase === Phase.PHASE_QUIESCING ? this.job(job.id) : this.to(job.id, phase);
  }

  job(jobId: string): Promise<Job> {
    return this.t.api.getJob({ guestId: GUEST, jobId });
  }

  async stack(jobId: string, stack: string): Promise<StackStatus | undefined> {
    return (await this.job(jobId)).stacks.find((s) => s.stack === stack);
  }

  waitForStack(jobId: string, stack: string, state: StackState, timeoutMs = 5_000): Promise<void> {
    return waitUntil(async () => (await this.stack(jobId, stack))?.state === state, timeoutMs, `stack ${stack} of ${jobId} in state ${StackState[state]}`);
  }

  /** The agent's database holds a lease of `stack` that has not run out (renewed by call or by a stream that holds it). */
  leaseAlive(stack: string): boolean {
    return (leaseExpiresAt(this.t, GUEST, stack) ?? 0) > Date.now();
  }

  /** The agent's log lines with this message. */
  logged(msg: string): Array<Record<string, unknown>> {
    return this.t.logs.filter((l) => l.msg === msg);
  }

  /** Open connections drop (as an agent's restart drops them); new ones are taken at once. */
  dropConnections(): void {
    this.relay.cut();
  }

  /** The agent becomes unreachable: open connections drop, new ones are refused. It keeps running. */
  async kill(): Promise<void> {
    await this.relay.stop();
  }

  async stop(): Promise<void> {
    this.faults.hang.clear();
    await this.relay.stop();
    await this.t.stop();
  }
}
