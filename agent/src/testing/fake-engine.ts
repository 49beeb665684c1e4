// A BackupEngine for component tests: drives the hooks like a real engine (quiesce, snapshot,
// archive with progress) without touching storage, records every call, and can hold the
// archive step open until the test releases it or the run is aborted.
import { SnapshotMode } from "@lull/proto";
import { LullError } from "@lull/shared";
import type { GuestConfig } from "../config.js";
import type { BackupEngine, EngineResult, EngineRun } from "../engines/engine.js";

export interface FakeEngineOptions {
  mode?: SnapshotMode;
  bytesTotal?: number;
  /** Progress reports sent while archiving (all at once, as fast as possible). */
  progressSteps?: number;
  /** Hold the archive step open until release() (or the run's abort). */
  holdArchive?: boolean;
  /** What sweep() reports as removed. */
  sweepRemoves?: string[];
}

export class FakeEngine implements BackupEngine {
  readonly name = "native" as const;
  /** Every call in order: `run <jobId>`, `quiesced <jobId>`, `snapshot <jobId>`, `archive <jobId>`, `cleanup <jobId>`, `sweep <guests>`. */
  readonly calls: string[] = [];
  private readonly options: FakeEngineOptions;
  private releaseArchive: (() => void) | undefined;
  private archiveHeld: Promise<void> | undefined;

  constructor(options: FakeEngineOptions = {}) {
    this.options = options;
    if (options.holdArchive) this.archiveHeld = new Promise<void>((resolve) => (this.releaseArchive = resolve));
  }

  callsOf(kind: string): string[] {
    return this.calls.filter((c) => c.startsWith(`${kind} `));
  }

  /** Lets held archive steps finish. */
  release(): void {
    this.releaseArchive?.();
  }

  async run(run: EngineRun): Promise<EngineResult> {
    const { hooks, jobId, signal } = run;
    const mode = this.options.mode ?? SnapshotMode.SNAPSHOT_MODE_SNAPSHOT;
    const total = this.options.bytesTotal ?? 1000;
    this.calls.push(`run ${jobId}`);
    try {
      await hooks.quiesce();
      this.calls.push(`quiesced ${jobId}`);
      if (mode === SnapshotMode.SNAPSHOT_MODE_SNAPSHOT || mode === SnapshotMode.SNAPSHOT_MODE_COPY) {
        hooks.snapshotting(mode);
        this.calls.push(`snapshot ${jobId}`);
        await hooks.snapshotted({ mode, snapshotAt: Date.now() });
      }
      hooks.archiving({ mode, bytesTotal: total });
      this.calls.push(`archive ${jobId}`);
      const steps = this.options.progressSteps ?? 0;
      for (let i = 1; i <= steps; i++) hooks.progress(Math.round((total * i) / steps), total);
      if (this.archiveHeld) await abortable(this.archiveHeld, signal);
      if (signal.aborted) throw new LullError("LULL_E_CANCELLED", "aborted");
      return { archivePath: `/archives/lull-${run.guest.id}-${jobId}.tar.zst`, archiveBytes: total };
    } finally {
      this.calls.push(`cleanup ${jobId}`);
    }
  }

  async sweep(guests: readonly GuestConfig[]): Promise<string[]> {
    this.calls.push(`sweep ${guests.map((g) => g.id).join(",")}`);
    return this.options.sweepRemoves ?? [];
  }
}

function abortable(p: Promise<void>, signal: AbortSignal): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    p.then(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    });
  });
}
