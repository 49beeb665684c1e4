// Figures of the early-resume benchmark: one sample per backup, medians, the targets and the table.

export type ResumeMode = "early" | "end";

export interface Sample {
  round: number;
  mode: ResumeMode;
  /** From the controller's `stack resumed` log line. */
  downtimeMs: number;
  stopMs: number;
  startMs: number;
  /** The job's snapshot_ms. */
  snapshotMs: number;
  /** The job's total_ms. */
  totalMs: number;
}

export const TARGETS = { overheadMs: 50, earlyToEndRatio: 0.02 } as const;

/** What the downtime holds beyond stopping, snapshotting and starting: waiting, RPCs, polling. */
export const overheadOf = (s: Sample) => s.downtimeMs - (s.stopMs + s.snapshotMs + s.startMs);

export function median(values: readonly number[]): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

export interface Summary {
  early: { downtimeMs: number; stopMs: number; snapshotMs: number; startMs: number; overheadMs: number; totalMs: number };
  end: { downtimeMs: number; stopMs: number; snapshotMs: number; startMs: number; overheadMs: number; totalMs: number };
  /** median early downtime / median at-end downtime. */
  ratio: number;
  overheadMet: boolean;
  ratioMet: boolean;
}

function medians(samples: readonly Sample[]) {
  const m = (f: (s: Sample) => number) => median(samples.map(f));
  return {
    downtimeMs: m((s) => s.downtimeMs),
    stopMs: m((s) => s.stopMs),
    snapshotMs: m((s) => s.snapshotMs),
    startMs: m((s) => s.startMs),
    overheadMs: m(overheadOf),
    totalMs: m((s) => s.totalMs),
  };
}

export function summarize(samples: readonly Sample[]): Summary {
  const early = medians(samples.filter((s) => s.mode === "early"));
  const end = medians(samples.filter((s) => s.mode === "end"));
  const ratio = early.downtimeMs / end.downtimeMs;
  return { early, end, ratio, overheadMet: early.overheadMs <= TARGETS.overheadMs, ratioMet: ratio <= TARGETS.earlyToEndRatio };
}

const ms = (v: number) => (Number.isFinite(v) ? `${Math.round(v)} ms` : "-");
const pad = (s: string, n: number) => s.padStart(n);

export const TABLE_HEADER = `${"round".padEnd(6)}${"resume".padEnd(7)}${pad("downtime", 11)}${pad("stop", 9)}${pad("snapshot", 10)}${pad("start", 9)}${pad("overhead", 10)}${pad("backup", 11)}`;

export function sampleRow(s: Sample): string {
  return `${String(s.round).padEnd(6)}${s.mode.padEnd(7)}${pad(ms(s.downtimeMs), 11)}${pad(ms(s.stopMs), 9)}${pad(ms(s.snapshotMs), 10)}${pad(ms(s.startMs), 9)}${pad(ms(overheadOf(s)), 10)}${pad(ms(s.totalMs), 11)}`;
}

export function summaryLines(summary: Summary): string[] {
  const row = (label: string, m: Summary["early"]) =>
    `${label.padEnd(13)}${pad(ms(m.downtimeMs), 11)}${pad(ms(m.stopMs), 9)}${pad(ms(m.snapshotMs), 10)}${pad(ms(m.startMs), 9)}${pad(ms(m.overheadMs), 10)}${pad(ms(m.totalMs), 11)}`;
  const verdict = (met: boolean) => (met ? "met" : "MISSED");
  return [
    row("median early", summary.early),
    row("median end", summary.end),
    "",
    `overhead of an early resume (median): ${ms(summary.early.overheadMs)}   target <= ${TARGETS.overheadMs} ms: ${verdict(summary.overheadMet)}`,
    `downtime early / at end (medians):    ${(summary.ratio * 100).toFixed(2)} %   target <= ${TARGETS.earlyToEndRatio * 100} %: ${verdict(summary.ratioMet)}`,
  ];
}
