// A BackupEngine for group tests: drives the hooks like the native engine (quiesce, snapshot,
// `await snapshotted`, archive, release in `finally`) without touching storage, and writes
// what it does per guest into a timeline shared with the test (`snapshot 101`, `release 101`).
// It can fail a guest's snapshot or archive, delay a snapshot, and hold archives open.
import { SnapshotMode } from "@lull/proto";
import { LullError } from "@lull/shared";
import type { GuestConfig } from "../../config.js";
import type { BackupEngine, EngineResult, EngineRun } from "../../engines/engine.js";

export interface TimelineEngineOptions {
  timeline?: string[];
  failSnapshot?: readonly string[];
  failArchive?: readonly string[];
  /** Guests archived in place while stopped (mode none): no snapshot, no `snapshotted`. */
  noCopy?: readonly string[];
  /** Milliseconds a guest's snapshot takes. */
  snapshotDelayMs?: Readonly<Record<string, number>>;
  /** Hold every archive open until release() (or the run's abort). */
  holdArchive?: boolean;
}

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const timer = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => (clearTimeout(timer), reject(signal.reason)), { once: true });
  });

/** Resolves when `held` does; rejects when the run aborts first. Leaves no timer behind. */
const heldOpen = (held: Promise<void>, signal: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    void held.then(() => (signal.removeEventListener("abort", onAbort), resolve()));
  });

export class TimelineEngine implements BackupEngine {
  readonly name = "native" as const;
  readonly timeline: string[];
  /** When each guest's snapshot was taken (ms). */
  readonly snapshotAt = new Map<string, number>();
  private releaseArchives: (() => void) | undefined;
  private readonly held: Promise<void> | undefined;

  constructor(private readonly options: TimelineEngineOptions = {}) {
    this.timeline = options.timeline ?? [];
    if (options.holdArchive) this.held = new Promise<void>((resolve) => (this.releaseArchives = resolve));
  }

  release(): void {
    this.releaseArchives?.();
  }

  async run({ hooks, guest, signal }: EngineRun): Promise<EngineResult> {
    const g = guest.id;
    const result = { archivePath: `/archives/${g}.tar.zst`, archiveBytes: 100 };
    await hooks.quiesce();
    this.timeline.push(`quiesced ${g}`);
    if (signal.aborted) throw new LullError("LULL_E_CANCELLED", `guest ${g}: cancelled`);
    if (this.options.noCopy?.includes(g)) {
      hooks.archiving({ mode: SnapshotMode.SNAPSHOT_MODE_NONE, bytesTotal: 100 });
      this.timeline.push(`archive ${g}`);
      return result;
    }
    hooks.snapshotting(SnapshotMode.SNAPSHOT_MODE_SNAPSHOT);
    await sleep(this.options.snapshotDelayMs?.[g] ?? 0, signal).catch(() => {
      throw new LullError("LULL_E_CANCELLED", `guest ${g}: snapshot cancelled`);
    });
    if (this.options.failSnapshot?.includes(g)) throw new LullError("LULL_E_SNAPSHOT_FAILED", `guest ${g}: the test fails this snapshot`);
    const at = Date.now();
    this.snapshotAt.set(g, at);
    this.timeline.push(`snapshot ${g}`);
    try {
      await hooks.snapshotted({ mode: SnapshotMode.SNAPSHOT_MODE_SNAPSHOT, snapshotAt: at });
      hooks.archiving({ mode: SnapshotMode.SNAPSHOT_MODE_SNAPSHOT, bytesTotal: 100 });
      this.timeline.push(`archive ${g}`);
      if (this.held) await heldOpen(this.held, signal);
      if (this.options.failArchive?.includes(g)) throw new LullError("LULL_E_ARCHIVE_FAILED", `guest ${g}: the test fails this archive`);
      return result;
    } finally {
      this.timeline.push(`release ${g}`);
    }
  }

  async sweep(_guests: readonly GuestConfig[]): Promise<string[]> {
    return [];
  }
}
