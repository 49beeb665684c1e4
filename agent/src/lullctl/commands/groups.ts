// `lullctl backup --group ID` / `lullctl backup <guest> <guest>...`: starts a consistency group run;
// with --wait follows it live and prints every member's and every stack's outcome.
// `lullctl groups`: the configured groups and their runs. `lullctl group <run-id>`: one run.
import { randomUUID } from "node:crypto";
import { Phase } from "@lull/proto";
import { LullError, phaseName } from "@lull/shared";
import type { Command } from "../args.js";
import { watchGroupToEnd } from "../group-watcher.js";
import { groupInfoJson, groupJson } from "../json-views.js";
import { configuredGroupsTable, groupDetails, groupFailure, groupSummary, groupsTable } from "../render-group.js";
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
