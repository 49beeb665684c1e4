// A failpoint for crash tests: `pause-in:<phase>` makes a run stop right after it committed
// entry into that phase, so a test can `kill -9` the agent there.
//
// After the committing hook returns, the run makes no further state change: an async step
// (the barrier, the runner's completion, the native archive's progress hook, which holds the
// archive by backpressure) waits forever with the event loop alive, so watchers still get the
// committed event and RPCs are still answered; a synchronous commit called later blocks the
// whole thread, so the engine cannot reach its next side effect either. Either way only a kill
// ends it.
import type { Phase } from "@lull/proto";
import { phaseFromName, phaseName, type Logger } from "@lull/shared";

export const FAILPOINT_PATTERN = /^pause-in:(queued|quiescing|snapshotting|snapshotted|archiving|done|failed|cancelled)$/;

export function failpointPhase(spec: string | undefined): Phase | undefined {
  if (spec === undefined) return undefined;
  const m = FAILPOINT_PATTERN.exec(spec);
  return m ? phaseFromName(m[1] as string) : undefined;
}

/** One run's view of the failpoint. */
export class FailpointGate {
  private pausedIn: Phase | undefined;

  constructor(
    private readonly phase: Phase | undefined,
    private readonly log: Logger,
  ) {}

  get paused(): boolean {
    return this.pausedIn !== undefined;
  }

  /** Called right after entry into `phase` was committed; returns true when the run pauses here. */
  reached(phase: Phase): boolean {
    if (this.phase === undefined || phase !== this.phase || this.paused) return false;
    this.pausedIn = phase;
    this.log.warn({ phase: phaseName(phase) }, "paused at failpoint");
    return true;
  }

  /** Never resolves: the run stays where it is until the process is killed. */
  hold(): Promise<never> {
    return new Promise<never>(() => {});
  }

  /** Blocks the thread for good (a synchronous hook called while paused). */
  freeze(): never {
    const cell = new Int32Array(new SharedArrayBuffer(4));
    for (;;) Atomics.wait(cell, 0, 0);
  }
}
