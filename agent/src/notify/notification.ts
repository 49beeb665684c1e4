// What a notification says, built from a fact (a job, a verification run, a stale stack, a
// schedule's ticks — each as its store has it), and the small
// template language of webhook bodies and headers: `{{ name }}` inserts a field as it is,
// `{{ json name }}` as a JSON value, `{{ secrets.NAME }}` a secret. Unknown names are an error
// at start, not an empty string at 3 a.m.
import { Consistency, Phase } from "@lull/proto";
import { LullError, phaseName } from "@lull/shared";
import type { JobRecord } from "../jobs/job.js";
import type { Fact, ScheduleRef } from "../observe/facts.js";
import { scheduleJobId } from "../schedules/store.js";
import type { Severity } from "./config.js";

export interface Notification {
  severity: Severity;
  /**
   * What happened, stable: `backup-failed`, `backup-crash-consistent`, `verification-failed`,
   * `verification-stale`, `schedule-missed`, `schedule-failed`.
   */
  event: string;
  title: string;
  message: string;
  node: string;
  /** The guest; for a schedule of several guests, their ids joined by commas. */
  guest: string;
  /** Every guest it concerns (a job's or a verification's one guest, each guest a schedule covers); matchers by guest look here. */
  guests: string[];
  /**
   * The stacks it concerns: a job's stacks, the stacks a verification failed (all checked ones
   * when it failed before checking), the stale stack, a schedule's (scheduleRef). Empty: none.
   */
  stacks: string[];
  /** The job's id; a verification's run id (`v-…`); `schedule:<id>` for a schedule. */
  jobId: string;
  /** Stable error code, empty when there is none. */
  code: string;
  /** ISO time of the fact. */
  timestamp: string;
}

const DAY = 86_400_000;
const iso = (ms: number) => new Date(ms).toISOString();
const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? "" : "s"}`;

/**
 * The notification a fact calls for, or undefined (pure). Errors: a failed backup, a failed
 * verification, a failed scheduled verify/prune run; warnings: a crash-consistent backup, a stale
 * verification, schedule ticks that did not run.
 */
export function notificationFor(fact: Fact, node: string): Notification | undefined {
  switch (fact.kind) {
    case "job-ended":
      return jobNotification(fact.job, node);
    case "verification-ended":
      return fact.run.phase === "failed" ? verificationFailed(fact, node) : undefined;
    case "verification-stale":
      return verificationStale(fact, node);
    case "schedule-not-run":
      return scheduleMissed(fact, node);
    case "schedule-run-failed":
      return scheduleFailed(fact, node);
    case "stack-resumed":
      return undefined;
  }
}

function jobNotification(job: JobRecord, node: string): Notification | undefined {
  const base = {
    node,
    guest: job.guestId,
    guests: [job.guestId],
    stacks: job.stacks.map((s) => s.stack),
    jobId: job.id,
    timestamp: (job.finishedAt ?? job.updatedAt ?? new Date()).toISOString(),
  };
  if (job.phase === Phase.PHASE_FAILED) {
    const where = phaseName(job.failedIn);
    return {
      ...base,
      severity: "error",
      event: "backup-failed",
      code: job.errorCode,
      title: `Backup of guest ${job.guestId} on ${node} failed`,
      message: `Job ${job.id} failed in ${where}: ${job.errorCode}${job.errorMessage ? `: ${job.errorMessage}` : ""}`,
    };
  }
  if (job.phase === Phase.PHASE_DONE && job.consistency === Consistency.CONSISTENCY_CRASH) {
    const notQuiesced = job.stacks.filter((s) => !s.acknowledgedAt).map((s) => `${s.stack} (${s.reason || "no answer"})`);
    return {
      ...base,
      severity: "warning",
      event: "backup-crash-consistent",
      code: "",
      title: `Backup of guest ${job.guestId} on ${node} is only crash-consistent`,
      message: `Job ${job.id} went on without every stack quiesced${notQuiesced.length ? `: ${notQuiesced.join(", ")}` : ""}; the archive is at ${job.archivePath || "(none)"}`,
    };
  }
  return undefined;
}

function verificationFailed(fact: Extract<Fact, { kind: "verification-ended" }>, node: string): Notification {
  const { run, point } = fact;
  const failed = run.results.filter((r) => !r.ok);
  const made = point ? ` (made ${point.createdAt.toISOString()})` : " (no longer in the catalog)";
  const why =
    failed.length > 0
      ? `stack${failed.length === 1 ? "" : "s"} ${failed.map((r) => `${r.stack} failed its ${r.check} check: ${r.reason}`).join("; ")}`
      : `no stack was checked (${fact.checkedStacks.join(", ") || "none"}): ${run.reason || "no reason recorded"}`;
  return {
    severity: "error",
    event: "verification-failed",
    title: `Verification of a restore point of guest ${run.guestId} on ${node} failed`,
    message: `Restore point ${run.pointId}${made} failed verification ${run.id}: ${why}`,
    node,
    guest: run.guestId,
    guests: [run.guestId],
    stacks: failed.length > 0 ? failed.map((r) => r.stack) : fact.checkedStacks,
    jobId: run.id,
    code: "LULL_E_VERIFY_FAILED",
    timestamp: iso(run.endedAt ?? run.startedAt),
  };
}

function verificationStale(fact: Extract<Fact, { kind: "verification-stale" }>, node: string): Notification {
  const days = Math.floor((fact.at - fact.since) / DAY);
  const last = fact.lastVerified
    ? `the last pass was point ${fact.lastVerified.pointId} on ${iso(fact.lastVerified.at)}`
    : `it was never verified (its guest's first point was made ${iso(fact.since)})`;
  return {
    severity: "warning",
    event: "verification-stale",
    title: `Verification of stack ${fact.stack} of guest ${fact.guestId} on ${node} is stale`,
    message: `No restore point of stack ${fact.stack} (guest ${fact.guestId}) passed verification for ${plural(days, "day")}, more than verify.staleAfterDays (${Math.round(fact.staleAfterMs / DAY)}); ${last}`,
    node,
    guest: fact.guestId,
    guests: [fact.guestId],
    stacks: [fact.stack],
    jobId: "",
    code: "",
    timestamp: iso(fact.at),
  };
}

function scheduleBase(s: ScheduleRef, node: string) {
  return { node, guest: s.guests.join(","), guests: s.guests, stacks: s.stacks, jobId: scheduleJobId(s.id) };
}

function scheduleMissed(fact: Extract<Fact, { kind: "schedule-not-run" }>, node: string): Notification {
  const { schedule: s, ticks } = fact;
  const groups = new Map<string, number>();
  for (const t of ticks) groups.set(`${t.outcome} (${t.reason})`, (groups.get(`${t.outcome} (${t.reason})`) ?? 0) + 1);
  const first = ticks[0]!.tickAt;
  const last = ticks.at(-1)!.tickAt;
  const when = ticks.length === 1 ? `tick ${iso(first)}` : `ticks ${iso(first)} to ${iso(last)}`;
  const what = [...groups].map(([why, n]) => `${n} ${why}`).join("; ");
  return {
    ...scheduleBase(s, node),
    severity: "warning",
    event: "schedule-missed",
    title: `Schedule ${s.id} on ${node} did not run ${plural(ticks.length, "tick")}`,
    message: `Schedule ${s.id} (${s.action} of ${s.guests.join(", ") || "no guest"}): ${when} did not run: ${what}`,
    code: "",
    timestamp: iso(fact.at),
  };
}

function scheduleFailed(fact: Extract<Fact, { kind: "schedule-run-failed" }>, node: string): Notification {
  const { schedule: s, tick } = fact;
  return {
    ...scheduleBase(s, node),
    severity: "error",
    event: "schedule-failed",
    title: `Scheduled ${s.action} ${s.id} on ${node} failed`,
    message: `Tick ${iso(tick.tickAt)} of schedule ${s.id} (${s.action} of ${s.guests.join(", ") || "no guest"}) failed: ${tick.errorCode ? `${tick.errorCode}: ` : ""}${tick.reason || "no reason recorded"}`,
    code: tick.errorCode,
    timestamp: iso(tick.endedAt ?? tick.recordedAt),
  };
}

export const TEMPLATE_FIELDS = ["severity", "event", "title", "message", "node", "guest", "guests", "stacks", "jobId", "code", "timestamp"] as const;

const TAG = /\{\{\s*(json\s+)?([A-Za-z_][A-Za-z0-9_.]*)\s*\}\}/g;

/** Checks a template's names; throws LULL_E_CONFIG_INVALID naming the key and the bad name. */
export function checkTemplate(template: string, secrets: readonly string[], key: string): void {
  for (const m of template.matchAll(TAG)) {
    const name = m[2] as string;
    const ok = name.startsWith("secrets.") ? secrets.includes(name.slice(8)) : (TEMPLATE_FIELDS as readonly string[]).includes(name);
    if (!ok) {
      throw new LullError(
        "LULL_E_CONFIG_INVALID",
        `${key}: unknown template name {{ ${name} }}; use one of ${TEMPLATE_FIELDS.join(", ")} or secrets.<name> of the target's secrets`,
      );
    }
  }
}

export function renderTemplate(template: string, n: Notification, secrets: Readonly<Record<string, string>>): string {
  return template.replace(TAG, (_all, json: string | undefined, name: string) => {
    const value: unknown = name.startsWith("secrets.") ? secrets[name.slice(8)] : n[name as keyof Notification];
    if (json) return JSON.stringify(value ?? null);
    return Array.isArray(value) ? value.join(",") : String(value ?? "");
  });
}

/** The default webhook body: every field as one JSON object. */
export function defaultBody(n: Notification): string {
  return JSON.stringify(n);
}
