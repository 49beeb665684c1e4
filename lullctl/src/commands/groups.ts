// `lullctl backup --group ID` / `lullctl backup <guest> <guest>...`: starts a consistency group run;
// with --wait follows it live and prints every member's and every stack's outcome.
// `lullctl groups`: the configured groups and their runs. `lullctl group <run-id>`: one run.
// `lullctl cancel --group RUN|GROUP`: cancels a run as a whole.
import { randomUUID } from "node:crypto";
import { Phase, type GroupRun } from "@lull/proto";
import { LullError, isTerminal, phaseName } from "@lull/shared";
import type { Command } from "../args.js";
import { watchGroupToEnd } from "../group-watcher.js";
import { groupInfoJson, groupJson } from "../json-views.js";
import { configuredGroupsTable, groupDetails, groupFailure, groupSummary, groupsTable, memberLines } from "../render-group.js";
import { EXIT, printJson, type CommandContext } from "./context.js";

export async function groupBackupCommand(ctx: CommandContext, cmd: Extract<Command, { name: "group-backup" }>): Promise<number> {
  const { out } = ctx;
  const response = await ctx.api.startGroupBackup({
    groupId: cmd.groupId ?? "",
    guestIds: cmd.guests,
    idempotencyKey: cmd.key ?? `lullctl-${randomUUID()}`,
    policy: cmd.policy,
    quiesceTimeoutMs: cmd.quiesceTimeoutMs,
    requestedBy: ctx.requestedBy,
  });
  const started = response.group;
  if (!started) throw new LullError("LULL_E_INTERNAL", "the agent answered StartGroupBackup without a group run");
  const how = response.created ? "started" : "already exists for this idempotency key";
  const what = `${started.groupId ? `group ${started.groupId}` : "ad hoc group"} (${started.guestIds.join(", ")})`;

  if (!cmd.wait) {
    if (ctx.json) printJson(out, { created: response.created, group: groupJson(started) });
    else out.line(`group run ${started.id} ${how}: ${what}, jobs ${started.jobIds.join(", ")}, phase ${phaseName(started.phase)}`);
    return EXIT.ok;
  }

  if (!ctx.json) out.line(`backup of ${what}: group run ${started.id} ${how}`);
  const run = await watchGroupToEnd(ctx, started);
  if (!run) {
    out.error(`lullctl: stopped watching; group run ${started.id} goes on (lullctl group ${started.id})`);
    return EXIT.interrupted;
  }
  if (ctx.json) printJson(out, { created: response.created, group: groupJson(run) });
  else for (const line of groupSummary(run)) out.line(line);
  if (run.phase === Phase.PHASE_DONE) return EXIT.ok;
  const failure = groupFailure(run);
  out.error(`lullctl: ${failure.code}: ${failure.message}`);
  return EXIT.failed;
}

export async function groupsCommand(ctx: CommandContext, cmd: Extract<Command, { name: "groups" }>): Promise<number> {
  const { groups, configured } = await ctx.api.listGroups({ guestId: cmd.guest ?? "", activeOnly: cmd.active, limit: cmd.limit });
  if (ctx.json) {
    printJson(ctx.out, { configured: configured.map(groupInfoJson), groups: groups.map(groupJson) });
    return EXIT.ok;
  }
  for (const line of [...configuredGroupsTable(configured), "", ...groupsTable(groups)]) ctx.out.line(line);
  return EXIT.ok;
}

export async function groupCommand(ctx: CommandContext, cmd: Extract<Command, { name: "group" }>): Promise<number> {
  const run = await ctx.api.getGroup({ groupRunId: cmd.runId });
  if (ctx.json) printJson(ctx.out, groupJson(run));
  else for (const line of groupDetails(run)) ctx.out.line(line);
  return EXIT.ok;
}

/** The run `cancel --group` means: the run id given, or the run of a configured group that has not ended. */
async function runToCancel(ctx: CommandContext, cmd: Extract<Command, { name: "cancel-group" }>): Promise<string> {
  if (cmd.runId !== undefined) return cmd.runId;
  const groupId = cmd.groupId as string;
  const { groups, configured } = await ctx.api.listGroups({ guestId: "", activeOnly: true, limit: 1000 });
  if (!configured.some((g) => g.id === groupId)) {
    throw new LullError("LULL_E_GROUP_NOT_FOUND", `group ${groupId} is not configured on this agent, and it is no group run id (g- and 26 characters)`);
  }
  const running = groups.filter((r) => r.groupId === groupId);
  if (running.length === 0) throw new LullError("LULL_E_GROUP_NOT_FOUND", `group ${groupId} has no run that has not ended (its runs: lullctl groups)`);
  return (running[0] as GroupRun).id;
}

export async function cancelGroupCommand(ctx: CommandContext, cmd: Extract<Command, { name: "cancel-group" }>): Promise<number> {
  const runId = await runToCancel(ctx, cmd);
  const { group: run } = await ctx.api.cancelGroup({ groupRunId: runId, reason: cmd.reason });
  if (!run) throw new LullError("LULL_E_INTERNAL", "the agent answered CancelGroup without a group run");
  if (ctx.json) {
    printJson(ctx.out, { group: groupJson(run) });
    return EXIT.ok;
  }
  const what = `group run ${run.id} (${run.groupId ? `group ${run.groupId}` : "ad hoc group"})`;
  if (run.phase === Phase.PHASE_CANCELLED) ctx.out.line(`${what} cancelled`);
  // The run ended while the cancel was on its way (a done run's last member finished; a failing run
  // ended with its own error): say so, with the error only when there is one.
  else if (isTerminal(run.phase)) ctx.out.line(`${what} ended ${phaseName(run.phase)} before the cancel took effect${run.errorCode ? `: ${run.errorCode}: ${run.errorMessage}` : ""}`);
  else ctx.out.line(`${what} cancellation requested (phase now ${phaseName(run.phase)})`);
  for (const line of memberLines(run.members)) ctx.out.line(line);
  return EXIT.ok;
}
