// Text views of consistency groups for people: runs and configured groups as tables, one run in
// detail (every member and every stack), and the summary `backup --group --wait` ends with.
import { Phase, type GroupInfo, type GroupRun, type Job } from "@lull/proto";
import { LullError, isTerminal, modeName, phaseName } from "@lull/shared";
import { formatBytes, formatDuration, formatTime, renderTable } from "./format.js";
import { consistencyName, policyName } from "./names.js";
import { stackDowntime } from "./render.js";

const groupName = (run: GroupRun) => run.groupId || "(ad hoc)";

export function groupsTable(runs: readonly GroupRun[]): string[] {
  if (runs.length === 0) return ["no group runs"];
  const rows = runs.map((r) => [
    r.id,
    groupName(r),
    r.guestIds.join(","),
    phaseName(r.phase),
    consistencyName(r.consistency),
    formatTime(r.createdAt),
    isTerminal(r.phase) ? formatDuration(r.totalMs) : "running",
    r.phase === Phase.PHASE_FAILED || r.phase === Phase.PHASE_CANCELLED ? `${r.errorCode} (${r.failedGuests.join(",")})` : "",
  ]);
  return renderTable(["RUN", "GROUP", "GUESTS", "PHASE", "CONSISTENCY", "CREATED", "TOTAL", "RESULT"], rows);
}

export function configuredGroupsTable(groups: readonly GroupInfo[]): string[] {
  if (groups.length === 0) return ["no groups configured"];
  const rows = groups.map((g) => [g.id, g.guestIds.join(","), policyName(g.policy), g.quiesceTimeoutMs ? formatDuration(g.quiesceTimeoutMs) : "default"]);
  return renderTable(["GROUP", "GUESTS", "POLICY", "QUIESCE TIMEOUT"], rows);
}

/** One line per member (phase, mode, consistency, archive or error), then one per stack. */
export function memberLines(members: readonly Job[]): string[] {
  const lines: string[] = [];
  for (const m of members) {
    const outcome = m.archivePath
      ? `${m.archivePath} (${formatBytes(m.archiveBytes)})`
      : m.errorCode
        ? `${m.errorCode} in ${phaseName(m.failedIn)}: ${m.errorMessage}`
        : "";
    lines.push(`member ${m.guestId}  ${m.id}  ${phaseName(m.phase)}, mode ${modeName(m.mode)}, ${consistencyName(m.consistency)}${outcome ? `  ${outcome}` : ""}`);
    for (const s of m.stacks) lines.push(`  stack ${s.stack}: downtime ${stackDowntime(s)}${s.reason ? `, ${s.reason}` : ""}`);
    if (m.stacks.length === 0) lines.push("  no stack registered for this guest");
  }
  return lines;
}

export function groupDetails(run: GroupRun): string[] {
  const fields: Array<[string, string]> = [
    ["group run", run.id],
    ["group", groupName(run)],
    ["guests", run.guestIds.join(", ")],
    ["phase", phaseName(run.phase)],
    ["consistency", consistencyName(run.consistency)],
    ["policy", policyName(run.policy)],
    ["requested by", run.requestedBy || "-"],
    ["created", formatTime(run.createdAt)],
    ["quiesced at", formatTime(run.quiescedAt)],
    ["snapshot at", `${formatTime(run.snapshotAt)}${run.snapshotAt ? " (earliest member snapshot)" : ""}`],
    ["finished", formatTime(run.finishedAt)],
    ["quiesce", formatDuration(run.quiesceMs)],
    ["snapshot", formatDuration(run.snapshotMs)],
    ["archive", formatDuration(run.archiveMs)],
    ["total", formatDuration(run.totalMs)],
  ];
  if (run.errorCode) fields.push(["error", `${run.errorCode} (in ${phaseName(run.failedIn)}): ${run.errorMessage}`]);
  const width = Math.max(...fields.map(([k]) => k.length));
  return [...fields.map(([k, v]) => `${k.padEnd(width)}  ${v}`), "", ...memberLines(run.members)];
}

export function groupSummary(run: GroupRun): string[] {
  return [
    ...memberLines(run.members),
    `snapshot at  ${formatTime(run.snapshotAt)}${run.snapshotAt ? " (earliest member snapshot; no stack resumed before the last one)" : ""}`,
    `total        ${formatDuration(run.totalMs)} (quiesce ${formatDuration(run.quiesceMs)}, snapshot ${formatDuration(run.snapshotMs)})`,
    `group        ${phaseName(run.phase)}, ${consistencyName(run.consistency)}-consistent`,
  ];
}

/** The failure of a group run that did not end `done`, as the error lullctl prints. */
export function groupFailure(run: GroupRun): LullError {
  const code = /^LULL_E_[A-Z_]+$/.test(run.errorCode) ? run.errorCode : "LULL_E_INTERNAL";
  return new LullError(code as LullError["code"], run.errorMessage || `group run ${run.id} ${phaseName(run.phase)}`);
}
