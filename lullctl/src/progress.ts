// Archive progress while `backup --wait` runs: a bar that redraws itself on a terminal, plain
// lines every few seconds otherwise (logs and pipes should not fill with carriage returns).
import { formatBytes } from "./format.js";
import type { Output } from "./output.js";

export interface ProgressOptions {
  out: Output;
  now: () => number;
  /** Minimum time between two redraws of the bar. */
  redrawEveryMs?: number;
  /** Minimum time between two plain lines. */
  lineEveryMs?: number;
}

export interface ProgressReporter {
  update(bytesDone: number, bytesTotal: number): void;
  /** Removes the bar (if drawn) so a normal line can follow. */
  clear(): void;
  /** Draws the bar again after clear() and a line, unless it had reached 100 %. */
  redraw(): void;
}

function percent(done: number, total: number): number {
  return total > 0 ? Math.min(100, Math.floor((done / total) * 100)) : 0;
}

export function progressReporter(options: ProgressOptions): ProgressReporter {
  const { out, now } = options;
  const redrawEveryMs = options.redrawEveryMs ?? 100;
  const lineEveryMs = options.lineEveryMs ?? 2_000;
  let first: { at: number; done: number } | undefined;
  let lastDrawAt = -Infinity;
  let barShown = false;
  let lastDone = -1;
  let lastTotal = 0;
  let cleared = false;

  /** Throughput since the first update (not since the watch began: quiesce and snapshot come first). */
  const rate = (done: number) => {
    if (!first) return "";
    const seconds = (now() - first.at) / 1000;
    return seconds > 0.2 ? `${formatBytes((done - first.done) / seconds)}/s` : "";
  };

  const drawBar = (done: number, total: number) => {
    const pct = percent(done, total);
    const text = `  ${formatBytes(done)}${total > 0 ? ` / ${formatBytes(total)}` : ""}  ${total > 0 ? `${pct}%` : ""}  ${rate(done)}`;
    const width = Math.max(10, Math.min(40, out.columns - text.length - 4));
    const filled = total > 0 ? Math.round((width * pct) / 100) : 0;
    out.write(`\r\x1b[K[${"#".repeat(filled)}${".".repeat(width - filled)}]${text.trimEnd()}`);
    barShown = true;
  };

  return {
    update(done, total) {
      const t = now();
      first ??= { at: t, done };
      const finished = total > 0 && done >= total;
      if (done === lastDone) return;
      lastDone = done;
      lastTotal = total;
      if (out.isTTY) {
        if (finished || t - lastDrawAt >= redrawEveryMs) {
          lastDrawAt = t;
          drawBar(done, total);
        }
        return;
      }
      if (finished || t - lastDrawAt >= lineEveryMs) {
        lastDrawAt = t;
        const of = total > 0 ? ` of ${formatBytes(total)} (${percent(done, total)}%)` : "";
        out.line(`           archived ${formatBytes(done)}${of} ${rate(done)}`.trimEnd());
      }
    },
    clear() {
      if (barShown) out.write("\r\x1b[K");
      cleared = barShown;
      barShown = false;
    },
    redraw() {
      if (cleared && !(lastTotal > 0 && lastDone >= lastTotal)) drawBar(lastDone, lastTotal);
      cleared = false;
    },
  };
}
