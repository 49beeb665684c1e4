// `lullctl verify <guest> <point-id> [--wait]`, `lullctl verifications <guest> [--point P]` and
// `lullctl prune <guest> [--dry-run]`: app-level verification and retention of restore points.
import type { PrunePointsResponse, Verification } from "@lull/proto";
import type { Command } from "../args.js";
import { EXIT, printJson, type CommandContext } from "./context.js";

const ENDED = new Set(["passed", "failed", "cancelled"]);

function verificationLines(v: Verification): string[] {
  const lines = [
    `verification ${v.id}  point ${v.pointId}  ${v.phase}${v.reason ? `: ${v.reason}` : ""}`,
    `  restore ${v.restoreMs} ms  check ${v.checkMs} ms  teardown ${v.teardownMs} ms`,
  ];
  for (const s of v.stacks) {
    lines.push(`  stack ${s.stack} (${s.check}) ${s.ok ? "passed" : `failed: ${s.reason}`}  ${s.durationMs} ms`);
    const evidence = JSON.parse(s.evidenceJson || "{}") as { queries?: Array<{ sql: string; output: string }>; log?: string[] };
    for (const q of evidence.queries ?? []) lines.push(`    ${q.sql}  →  ${q.output.replace(/\n/g, " | ")}`);
    const logLine = (evidence.log ?? []).find((l) => /database system was|redo starts|automatic recovery/.test(l));
    if (logLine) lines.push(`    log: ${logLine.replace(/^.*?(LOG|WARNING):\s+/, "")}`);
  }
  return lines;
}

export async function verifyCommand(ctx: CommandContext, cmd: Extract<Command, { name: "verify" }>): Promise<number> {
  let v = await ctx.api.verifyPoint({ guestId: cmd.guest, pointId: cmd.pointId });
  if (cmd.wait) {
    while (!ENDED.has(v.phase)) {
      if (ctx.signal.aborted) return EXIT.interrupted;
      await new Promise((r) => setTimeout(r, 500));
      const { verifications } = await ctx.api.listVerifications({ guestId: cmd.guest, pointId: cmd.pointId });
      v = verifications.find((x) => x.id === v.id) ?? v;
    }
  }
  if (ctx.json) printJson(ctx.out, v);
  else for (const line of verificationLines(v)) ctx.out.line(line);
  return v.phase === "failed" || v.phase === "cancelled" ? EXIT.failed : EXIT.ok;
}

export async function verificationsCommand(ctx: CommandContext, cmd: Extract<Command, { name: "verifications" }>): Promise<number> {
  const r = await ctx.api.listVerifications({ guestId: cmd.guest, pointId: cmd.pointId ?? "" });
  if (ctx.json) {
    printJson(ctx.out, r);
    return EXIT.ok;
  }
  for (const m of r.markers) ctx.out.line(`stack ${m.stack}: verified point ${m.verifiedBackupId} (${m.verifiedAt?.toISOString() ?? ""})`);
  if (r.markers.length === 0) ctx.out.line("no stack has a verified point yet");
  for (const v of r.verifications) for (const line of verificationLines(v)) ctx.out.line(line);
  return EXIT.ok;
}

function pruneLines(r: PrunePointsResponse): string[] {
  const lines = [`${r.dryRun ? "dry run: " : ""}${r.decisions.filter((d) => d.action === "remove").length} of ${r.decisions.length} points ${r.dryRun ? "would be" : ""} removed${r.lastRunFailed ? " (the last run failed: nothing is removed)" : ""}`.replace("  ", " ")];
  for (const d of r.decisions) lines.push(`${d.action.padEnd(6)} ${d.pointId}  ${d.at?.toISOString() ?? ""}  ${d.reasons.join("; ")}`);
  for (const f of r.failures) lines.push(`could not remove ${f}`);
  return lines;
}

export async function pruneCommand(ctx: CommandContext, cmd: Extract<Command, { name: "prune" }>): Promise<number> {
  const r = await ctx.api.prunePoints({ guestId: cmd.guest, dryRun: cmd.dryRun });
  if (ctx.json) printJson(ctx.out, r);
  else for (const line of pruneLines(r)) ctx.out.line(line);
  return r.failures.length > 0 ? EXIT.failed : EXIT.ok;
}
