// lullctl's tests run against the real agent in process (@lull/agent/testing: real SQLite, real
// gRPC) with a scripted engine, a simulated controller for the stack `app` of guest `demo`, and a
// TCP relay to the agent's operator socket that a test can cut, as a flaky network would.
import { Phase, SnapshotMode, StackState } from "@lull/proto";
import { LullError, isAfterSnapshot, isTerminal } from "@lull/shared";
import { SocketRelay, startTestAgent, type BackupEngine, type EngineResult, type EngineRun, type GuestConfig, type TestAgent } from "@lull/agent/testing";

export interface Script {
  outcome: "done" | "failed";
  /** Pause between the engine's steps. */
  stepMs: number;
  /** The controller reports its resume only once the job has ended (not at snapshotted). */
  resumeAfterEnd: boolean;
  /** The engine waits (for the run's abort) before it quiesces: the job stays queued. */
  holdQueued: boolean;
  /** Stop mode (as vzdump's): snapshotting, then archiving with no point-in-time copy, never snapshotted. */
  noSnapshot: boolean;
}

const DEFAULT_SCRIPT: Script = { outcome: "done", stepMs: 15, resumeAfterEnd: false, holdQueued: false, noSnapshot: false };

const pause = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    if (signal.aborted) return reject(new LullError("LULL_E_CANCELLED", "cancelled"));
    const timer = setTimeout(() => (signal.removeEventListener("abort", onAbort), resolve()), ms);
    const onAbort = () => (clearTimeout(timer), reject(new LullError("LULL_E_CANCELLED", "cancelled")));
    signal.addEventListener("abort", onAbort, { once: true });
  });

/** A backup like the native engine's, in steps: quiesce, copy, (demo's stack resumes), archive 3000 bytes in three reports. */
export class ScriptedEngine implements BackupEngine {
  readonly name = "native" as const;
  script: Script = { ...DEFAULT_SCRIPT };
  /** Resolves when the controller reported the stack of `jobId` resumed. */
  resumed: (jobId: string) => Promise<void> = async () => undefined;

  async run({ hooks, jobId, guest, signal }: EngineRun): Promise<EngineResult> {
    const s = this.script;
    if (s.holdQueued) await pause(2 ** 30, signal);
    await hooks.quiesce();
    await pause(s.stepMs, signal);
    const mode = s.noSnapshot ? SnapshotMode.SNAPSHOT_MODE_STOP : SnapshotMode.SNAPSHOT_MODE_COPY;
    hooks.snapshotting(mode);
    await pause(s.stepMs, signal);
    if (!s.noSnapshot) {
      await hooks.snapshotted({ mode, snapshotAt: Date.now() });
      if (!s.resumeAfterEnd && guest.id === "demo") await this.resumed(jobId);
    }
    hooks.archiving({ mode, bytesTotal: 3000 });
    for (const done of [1000, 2000, 3000]) {
      await pause(s.stepMs, signal);
      await hooks.progress(done, 3000);
    }
    await pause(s.stepMs, signal);
    if (s.outcome === "failed") throw new LullError("LULL_E_NO_SPACE", "archive dir is full");
    return { archivePath: `/var/lib/lull/archives/${guest.id}/${jobId}.tar.zst`, archiveBytes: 2048 };
  }

  async sweep(_guests: readonly GuestConfig[]): Promise<string[]> {
    return [];
  }
}

export interface LullctlAgent {
  t: TestAgent;
  engine: ScriptedEngine;
  relay: SocketRelay;
  /** What lullctl is pointed at (`--agent` / LULL_AGENT): the relay. */
  address: string;
  /** Stops the agent (open streams break) and starts it again on the same database and socket. */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

/** The real agent with guests `demo` and `other`, the stack `app` registered on `demo`, its controller simulated. */
export async function startLullctlAgent(): Promise<LullctlAgent> {
  const engine = new ScriptedEngine();
  const guests = ["demo", "other"].map((id) => ({ id, driver: "dir", snapshot: "copy", volumes: [{ name: "data", path: `/nonexistent/${id}` }] }));
  let t = await startTestAgent({ engine, guests });
  const relay = await SocketRelay.start(t.agent.socketPath as string);
  const resumedJobs = new Set<string>();
  engine.resumed = async (jobId) => {
    while (!resumedJobs.has(jobId)) await new Promise((r) => setTimeout(r, 5));
  };
  let running = true;
  const controller = async () => {
    const register = () => t.api.registerStack({ guestId: "demo", stack: "app", controllerId: "ctl-app", leaseTtlMs: 600_000 });
    await register();
    while (running) {
      await (async () => {
        const job = (await t.api.listJobs({ guestId: "demo", limit: 1 })).jobs[0];
        const app = job?.stacks.find((s) => s.stack === "app");
        if (!job || !app) return;
        if (job.phase === Phase.PHASE_QUIESCING && app.state === StackState.STACK_STATE_PENDING) {
          await t.api.acknowledgeQuiesce({ guestId: "demo", jobId: job.id, stack: "app" });
        } else if (app.state === StackState.STACK_STATE_QUIESCED) {
          const now = engine.script.resumeAfterEnd ? isTerminal(job.phase) : isAfterSnapshot(job.phase) || isTerminal(job.phase);
          if (!now) return;
          // After the end, a controller takes a while to start its stack again.
          if (engine.script.resumeAfterEnd) await new Promise((r) => setTimeout(r, 10 * engine.script.stepMs));
          await t.api.reportResumed({ guestId: "demo", jobId: job.id, stack: "app", downtimeMs: 42, early: !engine.script.resumeAfterEnd });
          resumedJobs.add(job.id);
        }
      })().catch(() => undefined); // a call that lost a race with the job (or a restart): look again
      await new Promise((r) => setTimeout(r, 5));
    }
  };
  let loop = controller();
  const stopController = async () => {
    running = false;
    await loop;
  };
  return {
    get t() {
      return t;
    },
    engine,
    relay,
    address: relay.address,
    async restart() {
      await stopController();
      await t.agent.stop();
      t.client.close();
      t = await startTestAgent({ engine, guests, dir: t.dir });
      running = true;
      loop = controller();
    },
    async stop() {
      await stopController();
      await relay.stop();
      await t.stop();
    },
  };
}
