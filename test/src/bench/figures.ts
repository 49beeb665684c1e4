// Shared figures of the scale benchmarks (fan-out, archive, store): percentiles, /proc readings of
// a process, and a table printer that puts each figure beside its target.
import { readFileSync } from "node:fs";

export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = Float64Array.from(values).sort();
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank]!;
}

export const medianOf = (values: readonly number[]) => percentile(values, 50);

/** Resident set size now and at its peak (VmHWM), in MiB, of a live process. */
export function rssMiB(pid: number): { now: number; peak: number } {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kib = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? NaN);
  return { now: kib("VmRSS") / 1024, peak: kib("VmHWM") / 1024 };
}

/** CPU seconds (user + system) a process has used so far. */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after "pid (comm) ".
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/**
 * The main thread's (the event loop's) time on a CPU and time runnable but waiting for one, in
 * seconds so far (/proc/PID/task/PID/schedstat): the wait is what a loaded machine adds to every
 * figure of that process, apart from what the process itself does.
 */
export function mainThreadSched(pid: number): { runSeconds: number; waitSeconds: number } {
  const [run, wait] = readFileSync(`/proc/${pid}/task/${pid}/schedstat`, "utf8").trim().split(" ").map(Number);
  return { runSeconds: (run ?? NaN) / 1e9, waitSeconds: (wait ?? NaN) / 1e9 };
}

export interface Row {
  name: string;
  value: string;
  target?: string;
  /** undefined: no target for this figure. */
  met?: boolean | undefined;
}

export function printTable(title: string, rows: readonly Row[], say: (line: string) => void): void {
  const w0 = Math.max(6, ...rows.map((r) => r.name.length));
  const w1 = Math.max(6, ...rows.map((r) => r.value.length));
  const w2 = Math.max(6, ...rows.map((r) => (r.target ?? "").length));
  say("");
  say(title);
  say(`  ${"figure".padEnd(w0)}  ${"value".padStart(w1)}  ${"target".padEnd(w2)}  met`);
  for (const r of rows) {
    const met = r.met === undefined ? "" : r.met ? "yes" : "NO";
    say(`  ${r.name.padEnd(w0)}  ${r.value.padStart(w1)}  ${(r.target ?? "").padEnd(w2)}  ${met}`);
  }
}

export const fmtMs = (v: number) => (Number.isFinite(v) ? `${v < 10 ? v.toFixed(1) : Math.round(v)} ms` : "-");

/** The load of the machine, printed beside the figures: other work shares these cores. */
export function machineNote(): string {
  const load = readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ");
  const cores = readFileSync("/proc/cpuinfo", "utf8").split("\n").filter((l) => l.startsWith("processor")).length;
  return `machine: ${cores} cores, load average ${load} (figures are medians; other work on the machine adds noise)`;
}

export function intOption(v: string | undefined, name: string, min: number, max: number): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > max) throw new Error(`--${name} must be a whole number from ${min} to ${max} (got ${v})`);
  return n;
}
