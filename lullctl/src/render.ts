// Text views of jobs and events for people: tables, details, one-line events, the backup summary.
import { EventKind, Phase, StackState, type AgentInfo, type Event, type Job, type StackStatus } from "@lull/proto";
import { isTerminal, modeName, phaseName } from "@lull/shared";
import { formatBytes, formatDuration, formatTime, renderTable } from "./format.js";
import { consistencyName, eventKindName, policyName, stackStateName } from "./names.js";

export function stackDowntime(s: StackStatus): string {
  if (s.state === StackState.STACK_STATE_QUIESCED) return "not reported yet (stopped; its controller reports when it runs again)";
  if (s.state === StackState.STACK_STATE_LEFT_STOPPED) return "none (left stopped: it was already stopped when the backup began)";
  if (s.state !== StackState.STACK_STATE_RESUMED && s.downtimeMs === 0) return `none (${stackStateName(s.state)})`;
  return `${formatDuration(s.downtimeMs)} (${s.resumedEarly ? "resumed early, at snapshotted" : "resumed at the end"})`;
}

function downtimeCell(job: Job): string {
  if (job.stacks.length === 0) return "-";
  return formatDuration(Math.max(...job.stacks.map((s) => s.downtimeMs)));
}

function outcomeCell(job: Job): string {
  if (job.phase === Phase.PHASE_DONE) return job.archivePath ? `${formatBytes(job.archiveBytes)}` : "";
  if (job.errorCode) return job.errorCode;
  return "";
}

export const JOB_COLUMNS = ["JOB", "GUEST", "PHASE", "MODE", "CONSISTENCY", "CREATED", "TOTAL", "DOWNTIME", "RESULT"] as const;

export function jobsTable(jobs: readonly Job[]): string[] {
  if (jobs.length === 0) return ["no jobs"];
  return renderTable(JOB_COLUMNS, jobs.map(jobRow));
}

/** One job's cells, in JOB_COLUMNS' order. */
export function jobRow(j: Job): string[] {
  return [
    j.kind === "restore" ? `${j.id} (restore)` : j.id,
    j.guestId,
    phaseName(j.phase),
    modeName(j.mode),
    consistencyName(j.consistency),
    formatTime(j.createdAt),
    isTerminal(j.phase) ? formatDuration(j.totalMs) : "running",
    downtimeCell(j),
    outcomeCell(j),
  ];
}

export function jobDetails(job: Job): string[] {
  const lines: Array<[string, string]> = [
    ["job", job.kind === "restore" ? `${job.id} (restore in place: holds the stacks while the volumes are replaced; archive is the point restored)` : job.id],
    ["guest", job.guestId],
    ["phase", phaseName(job.phase)],
    ["engine", job.engine || "-"],
    ["mode", modeName(job.mode)],
    ["consistency", consistencyName(job.consistency)],
    ["policy", policyName(job.policy)],
    ["requested by", job.requestedBy || "-"],
    ["idempotency key", job.idempotencyKey || "-"],
    ["created", formatTime(job.createdAt)],
    ["snapshot at", formatTime(job.snapshotAt)],
    ["finished", formatTime(job.finishedAt)],
    ["quiesce", formatDuration(job.quiesceMs)],
    ["snapshot", formatDuration(job.snapshotMs)],
    ["archive", formatDuration(job.archiveMs)],
    ["total", formatDuration(job.totalMs)],
  ];
  if (job.bytesTotal > 0 || job.bytesDone > 0) {
    lines.push(["progress", `${formatBytes(job.bytesDone)} / ${job.bytesTotal > 0 ? formatBytes(job.bytesTotal) : "?"}`]);
  }
  if (job.archivePath) lines.push(["archive file", `${job.archivePath} (${formatBytes(job.archiveBytes)})`]);
  if (job.errorCode || job.errorMessage) {
    lines.push(["error", `${job.errorCode || "-"}: ${job.errorMessage || "-"} (in ${phaseName(job.failedIn)})`]);
  }
  for (const s of job.stacks) {
    lines.push([`stack ${s.stack}`, `${stackStateName(s.state)}, downtime ${stackDowntime(s)}${s.reason ? `, ${s.reason}` : ""}`]);
    if (s.postStep) lines.push([`  post steps`, s.postStep]);
  }
  const width = Math.max(...lines.map(([k]) => k.length));
  return lines.map(([k, v]) => `${k.padEnd(width)}  ${v}`);
}

/** What a phase event adds to its line (the mode and snapshot time; the error of a failure). */
export function phaseDetail(e: Event): string {
  switch (e.phase) {
    case Phase.PHASE_SNAPSHOTTING:
    case Phase.PHASE_SNAPSHOTTED:
      return [`mode ${modeName(e.mode)}`, e.snapshotAt ? `snapshot at ${formatTime(e.snapshotAt)}` : ""]
        .filter(Boolean)
        .join(", ");
    case Phase.PHASE_FAILED:
    case Phase.PHASE_CANCELLED:
      return [e.errorCode, e.message].filter(Boolean).join(": ");
    default:
      return e.message;
  }
}

/** One line describing an event, without sequence number or time. */
export function eventText(e: Event): string {
  switch (e.kind) {
    case EventKind.EVENT_KIND_PHASE: {
      const detail = phaseDetail(e);
      return detail ? `${phaseName(e.phase).padEnd(12)}  ${detail}` : phaseName(e.phase);
    }
    case EventKind.EVENT_KIND_STACK: {
      const state = stackStateName(e.stackState);
      const extra =
        e.stackState === StackState.STACK_STATE_RESUMED
          ? ` (downtime ${formatDuration(e.downtimeMs)})`
          : e.message
            ? ` (${e.message})`
            : "";
      return `stack ${e.stack} ${state}${extra}`;
    }
    case EventKind.EVENT_KIND_PROGRESS:
      return `archived ${formatBytes(e.bytesDone)}${e.bytesTotal > 0 ? ` of ${formatBytes(e.bytesTotal)}` : ""}`;
    case EventKind.EVENT_KIND_GROUP: {
      const detail = [e.errorCode && isTerminal(e.phase) ? e.errorCode : "", e.message].filter(Boolean).join(": ");
      return `group ${phaseName(e.phase).padEnd(12)}  ${detail}`.trimEnd();
    }
    default:
      return `${eventKindName(e.kind)}: ${e.message}`;
  }
}

/** The `events` command's line: `#seq  time  guest  job  text` (a group run's own events: `group  <run-id>`; a node-wide note such as pruned events: `node  -`). */
export function eventLine(e: Event): string {
  const scope = e.guestId || (e.groupRunId ? "group" : "node");
  return `#${e.seq}  ${formatTime(e.at)}  ${scope}  ${e.jobId || e.groupRunId || "-"}  ${eventText(e)}`;
}

export function backupSummary(job: Job): string[] {
  const lines: string[] = [];
  for (const s of job.stacks) {
    lines.push(`downtime     ${s.stack}: ${stackDowntime(s)}`);
    if (s.postStep) lines.push(`post steps   ${s.stack}: ${s.postStep}`);
  }
  if (job.stacks.length === 0) lines.push("downtime     no stack registered for this guest");
  lines.push(`total        ${formatDuration(job.totalMs)}`);
  lines.push(`consistency  ${consistencyName(job.consistency)} (mode ${modeName(job.mode)})`);
  if (job.archivePath) lines.push(`archive      ${job.archivePath} (${formatBytes(job.archiveBytes)})`);
  return lines;
}

export function infoLines(info: AgentInfo): string[] {
  const head = [
    `node        ${info.node}`,
    `version     ${info.version}`,
    `started     ${formatTime(info.startedAt)}`,
    `last event  #${info.lastEventSeq}`,
    "",
  ];
  const rows = info.guests.map((g) => [g.id, g.engine, g.driver || "-", g.snapshot || "-"]);
  return [...head, ...(rows.length ? renderTable(["GUEST", "ENGINE", "DRIVER", "SNAPSHOT"], rows) : ["no guests configured"])];
}
