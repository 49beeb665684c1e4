// `lullctl schedules [--schedule ID] [--ticks N] [--json]`: each schedule's last run and result,
// its next run, and its newest ticks — runs, and missed or skipped ticks with the reason.
import type { ListSchedulesResponse, ScheduleTick } from "@lull/proto";
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
  for (const line of scheduleLines(r)) ctx.out.line(line);
  return EXIT.ok;
}

/** The text of a ListSchedules answer. */
export function scheduleLines(r: ListSchedulesResponse): string[] {
  if (r.schedules.length === 0) return ["no schedules (schedules.list in the agent's config)"];
  return r.schedules.flatMap((s) => {
    const last = s.lastRun ? `${at(s.lastRun.tickAt)} ${s.lastRun.outcome}${s.lastRun.reason ? ` (${s.lastRun.reason})` : ""}` : "never";
    return [
      `${s.id}  ${s.action}  '${s.schedule}' ${s.timeZone}  scope ${s.scope}  catch-up ${s.catchUp}${s.running ? "  RUNNING" : ""}`,
      `  last run ${last}`,
      `  next run ${at(s.nextRunAt)}`,
      ...s.recent.map(tickLine),
    ];
  });
}
