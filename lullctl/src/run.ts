// lullctl as a function: arguments and environment in, text out, exit code back.
// main.ts wires it to the process; tests call it directly with a captured Output.
import { hostname, userInfo } from "node:os";
import { LIMITS, connectAgent, fromServiceError, systemClock, type AgentApi, type AgentApiOptions, type ChannelTarget, type Clock } from "@lull/shared";
import { USAGE, parseInvocation, type Invocation } from "./args.js";
import { backupCommand } from "./commands/backup.js";
import { EXIT, printJson, type CommandContext } from "./commands/context.js";
import { eventsCommand } from "./commands/events.js";
import { clusterCommand } from "./commands/cluster.js";
import { cancelGroupCommand, groupBackupCommand, groupCommand, groupsCommand } from "./commands/groups.js";
import { cancelCommand, infoCommand, jobCommand, jobsCommand } from "./commands/jobs.js";
import { waitCommand } from "./commands/wait.js";
import { pruneCommand, verificationsCommand, verifyCommand } from "./commands/points.js";
import { schedulesCommand } from "./commands/schedules.js";
import { backupInfoCommand, backupsCommand, protectCommand } from "./commands/catalog.js";
import { restoreCancelCommand, restoreCommand, restoresCommand } from "./commands/restore.js";
import { resolveSettings } from "./config.js";
import type { Output } from "./output.js";
import { errorJson } from "./timeline-json.js";

export interface RunOptions {
  argv: readonly string[];
  env: NodeJS.ProcessEnv;
  out: Output;
  signal?: AbortSignal;
  clock?: Clock;
  /** Default: a gRPC client of the real agent. */
  connect?: (target: ChannelTarget, options: AgentApiOptions) => AgentApi;
}

function requester(): string {
  let user = "unknown";
  try {
    user = userInfo().username;
  } catch {
    // no passwd entry for this uid: keep "unknown"
  }
  return `lullctl ${user}@${hostname()}`.replace(/[^\x20-\x7e]/g, "?").slice(0, LIMITS.requestedBy);
}

async function dispatch(ctx: CommandContext, invocation: Invocation): Promise<number> {
  const cmd = invocation.command;
  if (invocation.cluster && (cmd.name === "jobs" || cmd.name === "backups" || cmd.name === "schedules" || cmd.name === "events")) return clusterCommand(ctx, cmd);
  switch (cmd.name) {
    case "backup":
      return backupCommand(ctx, cmd);
    case "group-backup":
      return groupBackupCommand(ctx, cmd);
    case "groups":
      return groupsCommand(ctx, cmd);
    case "group":
      return groupCommand(ctx, cmd);
    case "jobs":
      return jobsCommand(ctx, cmd);
    case "job":
      return jobCommand(ctx, cmd);
    case "cancel":
      return cancelCommand(ctx, cmd);
    case "cancel-group":
      return cancelGroupCommand(ctx, cmd);
    case "events":
      return eventsCommand(ctx, cmd);
    case "info":
      return infoCommand(ctx);
    case "wait":
      return waitCommand(ctx, cmd);
    case "verify":
      return verifyCommand(ctx, cmd);
    case "verifications":
      return verificationsCommand(ctx, cmd);
    case "prune":
      return pruneCommand(ctx, cmd);
    case "schedules":
      return schedulesCommand(ctx, cmd);
    case "backups":
      return backupsCommand(ctx, cmd);
    case "backup-info":
      return backupInfoCommand(ctx, cmd);
    case "protect":
    case "unprotect":
      return protectCommand(ctx, cmd);
    case "restore":
      return restoreCommand(ctx, cmd);
    case "restores":
      return restoresCommand(ctx, cmd);
    case "restore-cancel":
      return restoreCancelCommand(ctx, cmd);
    case "help":
      ctx.out.line(USAGE);
      return EXIT.ok;
  }
}

export async function runLullctl(options: RunOptions): Promise<number> {
  const { out } = options;
  let json = options.argv.includes("--json");
  let api: AgentApi | undefined;
  let parsing = true;
  // The commands that stream typed lines (timeline-json.ts) end a failure with an `error` line of that type too.
  let streaming = false;
  try {
    const invocation = parseInvocation(options.argv);
    json = invocation.json;
    const cmd = invocation.command;
    streaming = cmd.name === "wait" || (cmd.name === "backup" && cmd.wait);
    const settings = resolveSettings(invocation, options.env);
    parsing = false;
    if (invocation.command.name === "help") {
      out.line(USAGE);
      return EXIT.ok;
    }
    api = (options.connect ?? connectAgent)(
      { address: settings.agentAddress, token: settings.token, tls: settings.tls },
      { callTimeoutMs: settings.callTimeoutMs },
    );
    const ctx: CommandContext = {
      api,
      out,
      json,
      settings,
      signal: options.signal ?? new AbortController().signal,
      clock: options.clock ?? systemClock,
      requestedBy: requester(),
    };
    return await dispatch(ctx, invocation);
  } catch (err) {
    const error = fromServiceError(err);
    // grpc-js appends an empty "Resolution note:" to connection errors.
    const message = error.message.replace(/\.?\s*Resolution note:\s*$/, "");
    if (json) printJson(out, streaming ? errorJson({ code: error.code, message }) : { error: { code: error.code, message } });
    out.error(`lullctl: ${error.code}: ${message}`);
    if (parsing) out.error("(see lullctl --help)");
    return error.code === "LULL_E_INVALID_ARGUMENT" ? EXIT.usage : EXIT.failed;
  } finally {
    api?.close();
  }
}
