// What a notification says, built from a fact (a job as the ledger committed it), and the small
// template language of webhook bodies and headers: `{{ name }}` inserts a field as it is,
// `{{ json name }}` as a JSON value, `{{ secrets.NAME }}` a secret. Unknown names are an error
// at start, not an empty string at 3 a.m.
import { Consistency, Phase } from "@lull/proto";
import { LullError, phaseName } from "@lull/shared";
import type { Fact } from "../observe/facts.js";
import type { Severity } from "./config.js";

export interface Notification {
  severity: Severity;
  /** What happened, stable: `backup-failed`, `backup-crash-consistent`. */
  event: string;
  title: string;
  message: string;
  node: string;
  guest: string;
  /** The job's stacks (empty for a guest without registered stacks). */
  stacks: string[];
  jobId: string;
  /** Stable error code, empty when there is none. */
  code: string;
  /** ISO time of the fact. */
  timestamp: string;
}

/** The notification a fact calls for, or undefined. Failures are errors; a crash-consistent backup a warning. */
export function notificationFor(fact: Fact, node: string): Notification | undefined {
  if (fact.kind !== "job-ended") return undefined;
  const job = fact.job;
  const base = {
    node,
    guest: job.guestId,
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

export const TEMPLATE_FIELDS = ["severity", "event", "title", "message", "node", "guest", "stacks", "jobId", "code", "timestamp"] as const;

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
