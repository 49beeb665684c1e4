// `lullctl backup <guest> [--wait] ...`: starts a backup; with --wait follows it live to its end
// and prints the downtime per stack, the total time, the consistency and the archive (`--json`:
// the timeline streamed as one object per line, then a summary line; see timeline-json.ts).
import { randomUUID } from "node:crypto";
import { Phase, type Job } from "@lull/proto";
import { LullError, phaseName } from "@lull/shared";
import type { Command } from "../args.js";
import { watchJobToEnd } from "../job-watcher.js";
import { jobJson } from "../json-views.js";
import { backupSummary } from "../render.js";
import { errorJson, summaryJson } from "../timeline-json.js";
import { EXIT, printJson, type CommandContext } from "./context.js";

type BackupCommand = Extract<Command, { name: "backup" }>;

/** The failure of a job that ended without `done`, as the error lullctl prints. */
export function jobFailure(job: Job): LullError {
  if (job.phase === Phase.PHASE_CANCELLED) {
    return new LullError("LULL_E_CANCELLED", job.errorMessage || `job ${job.id} was cancelled`);
  }
  const code = job.errorCode && /^LULL_E_[A-Z_]+$/.test(job.errorCode) ? job.errorCode : "LULL_E_INTERNAL";
  const where = job.failedIn ? ` (failed in ${phaseName(job.failedIn)})` : "";
  return new LullError(code as LullError["code"], `${job.errorMessage || `job ${job.id} failed`}${where}`);
}

export async function backupCommand(ctx: CommandContext, cmd: BackupCommand): Promise<number> {
  const { out } = ctx;
  const response = await ctx.api.startBackup({
    guestId: cmd.guest,
    idempotencyKey: cmd.key ?? `lullctl-${randomUUID()}`,
    policy: cmd.policy,
    quiesceTimeoutMs: cmd.quiesceTimeoutMs,
    requestedBy: ctx.requestedBy,
  });
  const started = response.job;
  if (!started) throw new LullError("LULL_E_INTERNAL", "the agent answered StartBackup without a job");
  const how = response.created ? "started" : "already exists for this idempotency key";

  if (!cmd.wait) {
    if (ctx.json) printJson(out, { created: response.created, job: jobJson(started) });
    else out.line(`job ${started.id} ${how} (guest ${started.guestId}, phase ${phaseName(started.phase)})`);
    return EXIT.ok;
  }

  if (!ctx.json) out.line(`backup of guest ${started.guestId}: job ${started.id} ${how}`);
  const job = await watchJobToEnd(ctx, started);
  if (!job) {
    out.error(`lullctl: stopped watching; job ${started.id} goes on (lullctl job ${started.guestId} ${started.id})`);
    return EXIT.interrupted;
  }
  // --json: the timeline was streamed line by line; the summary (with `created` and `job`) is the last.
  if (ctx.json) printJson(out, summaryJson(job, { created: response.created, until: "done", reached: job.phase === Phase.PHASE_DONE }));
  else for (const line of backupSummary(job)) out.line(line);
  if (job.phase === Phase.PHASE_DONE) return EXIT.ok;
  const failure = jobFailure(job);
  if (ctx.json) printJson(out, errorJson(failure));
  out.error(`lullctl: ${failure.code}: ${failure.message}`);
  return EXIT.failed;
}
