// A BackupEngine whose every step waits for the test's cue: a job goes through the phases the
// real agent commits (quiescing, snapshotting, snapshotted, archiving, done — or failed where the
// test says so) only as far as `advance` allows, so a client's test drives the phases of a real
// job at its own pace. Waiting steps end with the run's abort (agent shutdown, cancel).
import { Phase, SnapshotMode } from "@lull/proto";
import { LullError } from "@lull/shared";
import type { GuestConfig } from "../config.js";
import type { BackupEngine, EngineResult, EngineRun } from "../engines/engine.js";

/** The phases a cued run passes, in order; `advance` to one lets the run go up to it. */
const STEPS = [Phase.PHASE_QUIESCING, Phase.PHASE_SNAPSHOTTING, Phase.PHASE_SNAPSHOTTED, Phase.PHASE_ARCHIVING, Phase.PHASE_DONE] as const;

interface Cues {
  /** Index in STEPS the run may reach. */
  allowed: number;
  failure: LullError | undefined;
  wake: Array<() => void>;
}

export class CuedEngine implements BackupEngine {
  readonly name = "native" as const;
  /** The mode of the runs that start from now on (`none`: no snapshot, archived in place). */
  mode: SnapshotMode = SnapshotMode.SNAPSHOT_MODE_SNAPSHOT;
  private readonly cues = new Map<string, Cues>();

  /**
   * Lets the run of `jobId` go on to `phase` (a phase of STEPS); `failure`: its next step throws
   * it instead, so the job fails in the phase it is in.
   */
  advance(jobId: string, phase: Phase, failure?: LullError): void {
    const cues = this.cuesOf(jobId);
    if (failure) cues.failure = failure;
    else {
      const index = STEPS.indexOf(phase as (typeof STEPS)[number]);
      if (index < 0) throw new Error(`a cued run cannot be advanced to ${Phase[phase]}`);
      cues.allowed = Math.max(cues.allowed, index);
    }
    for (const wake of cues.wake.splice(0)) wake();
  }

  async run({ hooks, jobId, signal }: EngineRun): Promise<EngineResult> {
    const mode = this.mode;
    const step = (phase: Phase) => this.cued(jobId, STEPS.indexOf(phase as (typeof STEPS)[number]), signal);
    try {
      await step(Phase.PHASE_QUIESCING);
      await hooks.quiesce();
      if (mode !== SnapshotMode.SNAPSHOT_MODE_NONE) {
        await step(Phase.PHASE_SNAPSHOTTING);
        hooks.snapshotting(mode);
        await step(Phase.PHASE_SNAPSHOTTED);
        await hooks.snapshotted({ mode, snapshotAt: Date.now() });
      }
      await step(Phase.PHASE_ARCHIVING);
      hooks.archiving({ mode, bytesTotal: 1000 });
      await step(Phase.PHASE_DONE);
      return { archivePath: `/archives/lull-${jobId}.tar.zst`, archiveBytes: 1000 };
    } finally {
      this.cues.delete(jobId);
    }
  }

  async sweep(_guests: readonly GuestConfig[]): Promise<string[]> {
    return [];
  }

  private cuesOf(jobId: string): Cues {
    let cues = this.cues.get(jobId);
    if (!cues) this.cues.set(jobId, (cues = { allowed: -1, failure: undefined, wake: [] }));
    return cues;
  }

  /** Resolves once step `index` is allowed; throws the failure the test set, or on abort. */
  private async cued(jobId: string, index: number, signal: AbortSignal): Promise<void> {
    const cues = this.cuesOf(jobId);
    for (;;) {
      if (signal.aborted) throw new LullError("LULL_E_CANCELLED", "aborted");
      if (cues.failure) throw cues.failure;
      if (cues.allowed >= index) return;
      await new Promise<void>((resolve) => {
        const onAbort = () => resolve();
        signal.addEventListener("abort", onAbort, { once: true });
        cues.wake.push(() => (signal.removeEventListener("abort", onAbort), resolve()));
      });
    }
  }
}
