// The timeline of one backup of a demo-app stack, from three independent witnesses on this
// machine's clock: the job's phase events (agent), the stop/start invocations (the stack's ledger,
// written by the controller's driver) and the app's own records (written every ~20 ms while it
// runs, so the outage is the one long gap between two records).
import { EventKind, type Event } from "@lull/proto";
import { phaseName } from "@lull/shared";
import { readRecords, recordsFile, type AppRecord } from "../demo/records.js";
import { readResumedLog, type EventFollower, type ResumedLog, type SiteStack } from "../support/index.js";

export interface BackupTimeline {
  /** When the job entered each phase (ms since the epoch), from its PHASE events. */
  phaseAt: Partial<Record<string, number>>;
  phases: string[];
  stopBegin: number;
  stopEnd: number;
  startBegin: number;
  startEnd: number;
  /** The app's last record before the outage and its first after. */
  lastBefore: AppRecord;
  firstAfter: AppRecord;
  /** The controller's `stack resumed` line, with its log time. */
  resumed: ResumedLog & { cause: string; at: number };
}

/** The longest gap between two consecutive records written at or after `sinceMs`. */
export function outageOf(records: readonly AppRecord[], sinceMs: number): { lastBefore: AppRecord; firstAfter: AppRecord } {
  let best: { lastBefore: AppRecord; firstAfter: AppRecord } | undefined;
  for (let i = 1; i < records.length; i++) {
    const a = records[i - 1]!;
    const b = records[i]!;
    if (a.at < sinceMs) continue;
    if (!best || b.at - a.at > best.firstAfter.at - best.lastBefore.at) best = { lastBefore: a, firstAfter: b };
  }
  if (!best) throw new Error(`the app wrote no records after ${new Date(sinceMs).toISOString()}`);
  return best;
}

function only<T>(items: readonly T[], what: string): T {
  if (items.length !== 1) throw new Error(`expected exactly one ${what}, found ${items.length}`);
  return items[0]!;
}

export function readTimeline(stack: SiteStack, jobId: string, follower: EventFollower, sinceMs: number): BackupTimeline {
  const events: Event[] = follower.events.filter((e) => e.jobId === jobId && e.kind === EventKind.EVENT_KIND_PHASE);
  const phaseAt: Partial<Record<string, number>> = {};
  for (const e of events) phaseAt[phaseName(e.phase)] ??= e.at?.getTime() ?? NaN;
  const ledger = stack.ledgerEntries().filter((e) => e.at >= sinceMs);
  const at = (verb: "start" | "stop", event: "begin" | "end") => only(ledger.filter((e) => e.verb === verb && e.event === event), `${verb} ${event}`).at;
  const line = only(
    (stack.controller?.proc.logs ?? []).filter((l) => l.msg === "stack resumed" && l.jobId === jobId),
    "`stack resumed` log line",
  );
  return {
    phaseAt,
    phases: events.map((e) => phaseName(e.phase)),
    stopBegin: at("stop", "begin"),
    stopEnd: at("stop", "end"),
    startBegin: at("start", "begin"),
    startEnd: at("start", "end"),
    ...outageOf(readRecords(recordsFile(stack.dataDir)), sinceMs),
    resumed: { ...readResumedLog(line), cause: String(line.cause), at: Date.parse(String(line.time)) },
  };
}

/** A readable dump for assertion messages (times relative to the stop). */
export function describeTimeline(t: BackupTimeline): string {
  const rel = (ms: number | undefined) => (ms === undefined ? "-" : `${ms - t.stopBegin >= 0 ? "+" : ""}${ms - t.stopBegin} ms`);
  const phases = Object.entries(t.phaseAt).map(([p, ms]) => `${p} ${rel(ms)}`);
  return [
    `phases: ${phases.join(", ")}`,
    `stop ${rel(t.stopBegin)}..${rel(t.stopEnd)}, start ${rel(t.startBegin)}..${rel(t.startEnd)}`,
    `app records: last #${t.lastBefore.id} ${rel(t.lastBefore.at)}, next #${t.firstAfter.id} ${rel(t.firstAfter.at)}`,
    `controller: resumed ${rel(t.resumed.at)} (downtime ${t.resumed.downtimeMs} ms, early=${t.resumed.early}, cause ${t.resumed.cause})`,
  ].join("\n");
}
