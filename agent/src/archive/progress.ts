// Progress reporting of an archive: monotonic, never above the total, rate-limited
// (at most one report per interval, so the job store is not written per 64 KiB chunk),
// and always ending with (total, total). A sink may return a promise: the archive is held until it
// settles (tar is stopped meanwhile, ./tar-progress.ts), which is how a paused run holds its archive.
import type { Clock } from "@lull/shared";

export type ProgressSink = (bytesDone: number, bytesTotal: number) => void | Promise<void>;

export interface ProgressReporter {
  /**
   * Tar bytes written so far (may exceed the total: tar headers and padding); clamped before reporting.
   * Returns the sink's promise when it reported and the sink returned one.
   */
  update(bytesDone: number): void | Promise<void>;
  /** Reports (total, total) unless that was the last report. */
  finish(): void;
}

/** Default interval between two progress reports. */
export const PROGRESS_INTERVAL_MS = 1_000;

export function createProgressReporter(
  sink: ProgressSink,
  bytesTotal: number,
  options: { clock: Clock; intervalMs?: number },
): ProgressReporter {
  const intervalMs = options.intervalMs ?? PROGRESS_INTERVAL_MS;
  let reported = -1;
  let reportedAt = Number.NEGATIVE_INFINITY;
  const report = (value: number) => {
    reported = value;
    reportedAt = options.clock.now();
    return sink(value, bytesTotal);
  };
  return {
    update(bytesDone: number) {
      const value = Math.min(Math.max(0, bytesDone), bytesTotal);
      if (value <= reported) return;
      if (options.clock.now() - reportedAt < intervalMs) return;
      return report(value);
    },
    finish() {
      if (reported !== bytesTotal) void report(bytesTotal);
    },
  };
}
