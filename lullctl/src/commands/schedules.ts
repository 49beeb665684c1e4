// `lullctl schedules [--schedule ID] [--ticks N] [--json]`: each schedule's last run and result,
// its next run, and its newest ticks — runs, and missed or skipped ticks with the reason.
import type { ScheduleTick } from "@lull/proto";
import type { Command } from "../args.js";
import { EXIT, printJson, type CommandContext } from "./context.js";

const at = (d: Date | undefined) => (d ? d.toISOString().replace(".000Z", "Z") : "-");

function tickLine(t: ScheduleTick): string {
  return `  ${at(t.tickAt)}  ${t.outcome.padEnd(7)}  ${t.node}${t.runRef ? `  ${t.runRef}` : ""}${t.reason ? `  ${t.reason}` : ""}`;
}

export async function schedulesCommand(ctx: CommandContext, cmd: Extract<Command, { name: "schedules" }>): Promise<number> {
  const r = await ctx.api.listSchedules({ scheduleId: cmd.scheduleId ?? "", ticks: cmd.ticks });
  if (ctx.json) {
    printJson(ctx.out, r);
    return EXIT.ok;
  }
  if (r.schedules.length === 0) ctx.out.line("no schedules (schedules.list in the agent's config)");
  for (const s of r.schedules) {
    const last = s.lastRun ? `${at(s.lastRun.tickAt)} ${s.lastRun.outcome}${s.lastRun.reason ? ` (${s.lastRun.reason})` : ""}` : "never";
    ctx.out.line(`${s.id}  ${s.action}  '${s.schedule}' ${s.timeZone}  scope ${s.scope}  catch-up ${s.catchUp}${s.running ? "  RUNNING" : ""}`);
    ctx.out.line(`  last run ${last}`);
    ctx.out.line(`  next run ${at(s.nextRunAt)}`);
    for (const t of s.recent) ctx.out.line(tickLine(t));
  }
  return EXIT.ok;
}
