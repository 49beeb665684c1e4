// Figures of the group benchmark (group.ts), pure: one stack's outage read from its counted
// driver's ledger, one run's figures from the coordinator's run and those outages, and the table's
// rows comparing a group across nodes with the same size on one node.
import type { LedgerEntry } from "../support/index.js";
import { fmtMs, percentile, type Row } from "./figures.js";
import { median as medianOf } from "./stats.js";

export type Layout = "across" | "local";

/** One stack's outage in a run, from its ledger (ms since the epoch). */
export interface Outage {
  /** The controller ran the stop command (before the command's own Node start-up). */
  stopSpawned: number;
  /** The stop command began (the app still runs until it acts). */
  stopBegin: number;
  /** The stop command ended: the app is stopped (what the stack acknowledges). */
  stopEnd: number;
  /** The start command began: the controller let the stack run again. */
  startBegin: number;
  /** The start command ended: the app runs again. */
  startEnd: number;
}

/** The first complete stop → start of the ledger at or after `sinceMs`, or undefined while it is not complete. */
export function outageOf(entries: readonly LedgerEntry[], sinceMs: number): Outage | undefined {
  const after = (verb: LedgerEntry["verb"], event: LedgerEntry["event"], from: number) => entries.find((e) => e.verb === verb && e.event === event && e.at >= from)?.at;
  const stop = entries.find((e) => e.verb === "stop" && e.event === "begin" && e.at >= sinceMs);
  if (stop === undefined) return undefined;
  const stopBegin = stop.at;
  const stopEnd = after("stop", "end", stopBegin);
  if (stopEnd === undefined) return undefined;
  const startBegin = after("start", "begin", stopEnd);
  if (startBegin === undefined) return undefined;
  const startEnd = after("start", "end", startBegin);
  return startEnd === undefined ? undefined : { stopSpawned: stop.spawnedAt ?? stopBegin, stopBegin, stopEnd, startBegin, startEnd };
}

/** Downtime: the stop's begin to the start's end. Held: stopped (acknowledged) until told to run again. */
export const downtimeOf = (o: Outage) => o.startEnd - o.stopBegin;
export const heldOf = (o: Outage) => o.startBegin - o.stopEnd;

export interface RunFigures {
  size: number;
  layout: Layout;
  round: number;
  runId: string;
  phase: string;
  /** The run's created_at → quiesced_at (every stack of every member acknowledged). */
  barrierMs: number;
  /** Inside the barrier: created_at → the last stack's stop command run by its controller. */
  lastToldMs: number;
  /** Inside the barrier: the last stack's stop ended (acknowledged) → quiesced_at. */
  afterLastAckMs: number;
  /** First to last member snapshot_at. */
  skewMs: number;
  /** The run's created_at → finished_at. */
  totalMs: number;
  outages: Outage[];
  /** What went wrong (a run not done, a stack that ran again before the last snapshot…): a broken bench. */
  problems: string[];
}

/** The member fields of `lullctl --json group` the bench reads. */
export interface MemberJson {
  guestId: string;
  phase: string;
  snapshotAt: string | null;
}
export interface GroupJson {
  id: string;
  phase: string;
  createdAt: string | null;
  quiescedAt: string | null;
  snapshotAt: string | null;
  finishedAt: string | null;
  error: { code: string | null; message: string | null } | null;
  members: MemberJson[];
}

const ms = (iso: string | null | undefined) => (iso ? Date.parse(iso) : NaN);

/**
 * A run's figures from the coordinator's view of it, each member stack's outage (by member guest
 * id as the run names it) and the skew the run's snapshotted event recorded (undefined: none found).
 */
export function runFigures(
  at: { size: number; layout: Layout; round: number },
  group: GroupJson,
  outages: ReadonlyMap<string, Outage | undefined>,
  recordedSkewMs: number | undefined,
): RunFigures {
  const problems: string[] = [];
  if (group.phase !== "done") problems.push(`run ${group.id} ended ${group.phase}: ${group.error?.code ?? ""} ${group.error?.message ?? ""}`.trim());
  const snapshots = group.members.map((m) => ms(m.snapshotAt));
  const first = Math.min(...snapshots);
  const last = Math.max(...snapshots);
  const skewMs = last - first;
  if (recordedSkewMs === undefined) problems.push(`run ${group.id}: no snapshotted event recorded the skew`);
  else if (group.phase === "done" && recordedSkewMs !== skewMs) problems.push(`run ${group.id}: the recorded skew ${recordedSkewMs} ms is not the members' ${skewMs} ms`);
  const found: Outage[] = [];
  for (const m of group.members) {
    const o = outages.get(m.guestId);
    if (!o) {
      problems.push(`${m.guestId}: its stack's ledger shows no complete stop and start`);
      continue;
    }
    found.push(o);
    if (o.stopEnd > first) problems.push(`${m.guestId}: its stack acknowledged ${o.stopEnd - first} ms after the first snapshot`);
    if (o.startBegin < last) problems.push(`${m.guestId}: its stack ran again ${last - o.startBegin} ms before the last snapshot existed`);
  }
  return {
    ...at,
    runId: group.id,
    phase: group.phase,
    barrierMs: ms(group.quiescedAt) - ms(group.createdAt),
    lastToldMs: Math.max(...found.map((o) => o.stopSpawned)) - ms(group.createdAt),
    afterLastAckMs: ms(group.quiescedAt) - Math.max(...found.map((o) => o.stopEnd)),
    skewMs,
    totalMs: ms(group.finishedAt) - ms(group.createdAt),
    outages: found,
    problems,
  };
}

/** The skew the run's `snapshotted` event message states (`members' snapshots span 412 ms`). */
export function recordedSkew(messages: readonly string[]): number | undefined {
  for (const m of messages) {
    const hit = /members' snapshots span (\d+) ms/.exec(m);
    if (hit) return Number(hit[1]);
  }
  return undefined;
}

const downtimes = (r: RunFigures) => r.outages.map(downtimeOf);

/** One line per run. */
export function runLine(r: RunFigures): string {
  const d = downtimes(r);
  const h = r.outages.map(heldOf);
  return (
    `  round ${r.round} ${String(r.size).padStart(2)} members ${r.layout.padEnd(6)} ${r.runId} ${r.phase}: barrier ${fmtMs(r.barrierMs)} (last stop run at ${fmtMs(r.lastToldMs)}, last ack → barrier ${fmtMs(r.afterLastAckMs)}), skew ${fmtMs(r.skewMs)}, ` +
    `downtime p50 ${fmtMs(percentile(d, 50))} max ${fmtMs(percentile(d, 100))}, held p50 ${fmtMs(percentile(h, 50))} max ${fmtMs(percentile(h, 100))}, run ${fmtMs(r.totalMs)}` +
    (r.problems.length > 0 ? `; PROBLEMS: ${r.problems.join("; ")}` : "")
  );
}

interface Summary {
  barrierMs: number;
  lastToldMs: number;
  afterLastAckMs: number;
  skewMs: number;
  downtimeP50Ms: number;
  downtimeMaxMs: number;
  heldP50Ms: number;
  runs: number;
}

/** Medians over the runs of each run's figure; the max is the largest of any run. */
function summarise(runs: readonly RunFigures[]): Summary {
  return {
    barrierMs: medianOf(runs.map((r) => r.barrierMs)),
    lastToldMs: medianOf(runs.map((r) => r.lastToldMs)),
    afterLastAckMs: medianOf(runs.map((r) => r.afterLastAckMs)),
    skewMs: medianOf(runs.map((r) => r.skewMs)),
    downtimeP50Ms: medianOf(runs.map((r) => percentile(downtimes(r), 50))),
    downtimeMaxMs: Math.max(...runs.map((r) => percentile(downtimes(r), 100))),
    heldP50Ms: medianOf(runs.map((r) => percentile(r.outages.map(heldOf), 50))),
    runs: runs.length,
  };
}

const ratio = (a: number, b: number) => (Number.isFinite(a / b) && b > 0 ? `×${(a / b).toFixed(2)}` : "×-");

/** For each size: each figure across nodes beside the same group on one node, and their ratio. */
export function comparisonRows(runs: readonly RunFigures[], sizes: readonly number[]): Row[] {
  const rows: Row[] = [];
  for (const n of sizes) {
    const across = summarise(runs.filter((r) => r.size === n && r.layout === "across"));
    const local = summarise(runs.filter((r) => r.size === n && r.layout === "local"));
    const row = (name: string, f: (s: Summary) => number) => rows.push({ name: `${n} members: ${name}`, value: `${fmtMs(f(across))} / ${fmtMs(f(local))}  ${ratio(f(across), f(local))}` });
    row("barrier (run start → all acknowledged)", (s) => s.barrierMs);
    row("  run start → last stop command run", (s) => s.lastToldMs);
    row("  last acknowledgement → barrier passed", (s) => s.afterLastAckMs);
    row("snapshot skew (first → last member)", (s) => s.skewMs);
    row("downtime per stack p50", (s) => s.downtimeP50Ms);
    row("downtime per stack max", (s) => s.downtimeMaxMs);
    row("held stopped per stack p50", (s) => s.heldP50Ms);
  }
  return rows;
}
