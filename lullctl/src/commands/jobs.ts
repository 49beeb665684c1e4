// `lullctl jobs`, `lullctl job <guest> <job-id>`, `lullctl cancel <guest> <job-id>` and `lullctl info`.
import { phaseName } from "@lull/shared";
import type { Command } from "../args.js";
import { infoJson, jobJson } from "../json-views.js";
import { infoLines, jobDetails, jobsTable } from "../render.js";
import { EXIT, printJson, type CommandContext } from "./context.js";

export async function jobsCommand(ctx: CommandContext, cmd: Extract<Command, { name: "jobs" }>): Promise<number> {
  const { jobs, nextPageToken } = await ctx.api.listJobs({ guestId: cmd.guest ?? "", activeOnly: cmd.active, limit: cmd.limit, pageToken: cmd.page ?? "" });
  if (ctx.json) printJson(ctx.out, { jobs: jobs.map(jobJson), ...(nextPageToken ? { nextPageToken } : {}) });
  else {
    for (const line of jobsTable(jobs)) ctx.out.line(line);
    if (nextPageToken) ctx.out.line(`more: lullctl jobs --page ${nextPageToken}${cmd.guest ? ` --guest ${cmd.guest}` : ""}${cmd.active ? " --active" : ""}${cmd.limit ? ` --limit ${cmd.limit}` : ""}`);
  }
  return EXIT.ok;
}

export async function jobCommand(ctx: CommandContext, cmd: Extract<Command, { name: "job" }>): Promise<number> {
  const job = await ctx.api.getJob({ guestId: cmd.guest, jobId: cmd.jobId });
  if (ctx.json) printJson(ctx.out, jobJson(job));
  else for (const line of jobDetails(job)) ctx.out.line(line);
  return EXIT.ok;
}

export async function cancelCommand(ctx: CommandContext, cmd: Extract<Command, { name: "cancel" }>): Promise<number> {
  const job = await ctx.api.cancelJob({ guestId: cmd.guest, jobId: cmd.jobId, reason: cmd.reason });
  if (ctx.json) printJson(ctx.out, jobJson(job));
  else ctx.out.line(`job ${job.id} cancellation requested (phase now ${phaseName(job.phase)})`);
  return EXIT.ok;
}

export async function infoCommand(ctx: CommandContext): Promise<number> {
  const info = await ctx.api.getAgentInfo();
  if (ctx.json) printJson(ctx.out, { agent: ctx.settings.agentAddress, ...infoJson(info) });
  else for (const line of [`agent       ${ctx.settings.agentAddress}`, ...infoLines(info)]) ctx.out.line(line);
  return EXIT.ok;
}
