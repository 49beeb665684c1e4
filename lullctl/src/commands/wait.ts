// `lullctl wait <guest> <job-id> --until snapshotted|done [--timeout MS]`: follows a job that already
// runs (started by a schedule, another shell, a script) until its snapshot exists or until it ends,
// printing its timeline (`--json`: one object per line, see ../timeline-json.ts), and says by its
// exit code how it went (WAIT_EXIT, documented in lullctl/README.md).
import { EventKind, Phase, type Event, type Job } from "@lull/proto";
import { LullError, isTerminal, modeName, phaseName } from "@lull/shared";
import type { Command } from "../args.js";
import { formatTime } from "../format.js";
import { watchJobToEnd } from "../job-watcher.js";
import { backupSummary } from "../render.js";
import { errorJson, summaryJson } from "../timeline-json.js";
import { jobFailure } from "./backup.js";
import { EXIT, printJson, type CommandContext } from "./context.js";

type WaitCommand = Extract<Command, { name: "wait" }>;

/** `lullctl wait`'s exit codes. */
export const WAIT_EXIT = {
  /** The job reached what was waited for. */
  reached: 0,
  /** The job failed or was cancelled (before reaching it), or the agent answered with an error. */
  failed: EXIT.failed,
  usage: EXIT.usage,
  /** `--until snapshotted`: the job went on (or ended done) without a snapshot point — its mode makes no point-in-time copy. */
  noSnapshot: 3,
  /** `--timeout` passed first; the job goes on. */
  timedOut: 124,
  interrupted: EXIT.interrupted,
} as const;

type Verdict = "reached" | "failed" | "no-snapshot" | "pending";

/** Where `job` stands against what is waited for. */
export function verdict(job: Job, until: WaitCommand["until"]): Verdict {
  const failed = job.phase === Phase.PHASE_FAILED || job.phase === Phase.PHASE_CANCELLED;
  if (until === "done") return job.phase === Phase.PHASE_DONE ? "reached" : failed ? "failed" : "pending";
  if (failed) return "failed";
  if (job.phase === Phase.PHASE_SNAPSHOTTED || job.snapshotAt !== undefined) return "reached";
  // Archiving (or done) without a snapshot: suspend, stop or none mode never reaches snapshotted.
  if (job.phase === Phase.PHASE_ARCHIVING || job.phase === Phase.PHASE_DONE) return "no-snapshot";
  return "pending";
}

/** For --until snapshotted, the events after which the verdict can be read. */
const decidesSnapshot = (e: Event) =>
  e.kind === EventKind.EVENT_KIND_PHASE && (e.phase === Phase.PHASE_SNAPSHOTTED || e.phase === Phase.PHASE_ARCHIVING || isTerminal(e.phase));

export async function waitCommand(ctx: CommandContext, cmd: WaitCommand): Promise<number> {
  const { out } = ctx;
  const first = await ctx.api.getJob({ guestId: cmd.guest, jobId: cmd.jobId });
  let job: Job | undefined = first;
  let timedOut = false;
  if (verdict(first, cmd.until) === "pending") {
    const stop = new AbortController();
    const onInterrupt = () => stop.abort();
    ctx.signal.addEventListener("abort", onInterrupt, { once: true });
    const timer = cmd.timeoutMs > 0 ? setTimeout(() => ((timedOut = true), stop.abort()), cmd.timeoutMs) : undefined;
    try {
      if (!ctx.json) out.line(`waiting for job ${first.id} of guest ${first.guestId} (${phaseName(first.phase)} now) until ${cmd.until}`);
      job = await watchJobToEnd({ ...ctx, signal: stop.signal }, first, cmd.until === "snapshotted" ? { stopAt: decidesSnapshot } : {});
    } finally {
      clearTimeout(timer);
      ctx.signal.removeEventListener("abort", onInterrupt);
    }
  }
  if (job === undefined) {
    const latest = await ctx.api.getJob({ guestId: cmd.guest, jobId: cmd.jobId }).catch(() => first);
    if (timedOut) {
      const error = new LullError("LULL_E_WAIT_TIMEOUT", `job ${first.id} did not reach ${cmd.until} within ${cmd.timeoutMs} ms (now ${phaseName(latest.phase)}); it goes on`);
      return report(ctx, latest, cmd, false, WAIT_EXIT.timedOut, error);
    }
    out.error(`lullctl: stopped watching; job ${first.id} goes on (lullctl job ${first.guestId} ${first.id})`);
    return WAIT_EXIT.interrupted;
  }
  const v = verdict(job, cmd.until);
  if (v === "reached") return report(ctx, job, cmd, true, WAIT_EXIT.reached);
  if (v === "no-snapshot") {
    const how = job.phase === Phase.PHASE_DONE ? "ended done" : `is ${phaseName(job.phase)}`;
    const error = new LullError("LULL_E_WRONG_PHASE", `job ${job.id} ${how} without a snapshot point (mode ${modeName(job.mode)} makes no point-in-time copy)`);
    return report(ctx, job, cmd, false, WAIT_EXIT.noSnapshot, error);
  }
  return report(ctx, job, cmd, false, WAIT_EXIT.failed, jobFailure(job));
}

function report(ctx: CommandContext, job: Job, cmd: WaitCommand, reached: boolean, code: number, error?: LullError): number {
  const { out } = ctx;
  if (ctx.json) {
    printJson(out, summaryJson(job, { until: cmd.until, reached }));
    if (error) printJson(out, errorJson(error));
  } else if (reached && cmd.until === "snapshotted") {
    out.line(`job ${job.id} snapshotted at ${formatTime(job.snapshotAt)} (mode ${modeName(job.mode)}; now ${phaseName(job.phase)})`);
  } else if (isTerminal(job.phase)) {
    for (const line of backupSummary(job)) out.line(line);
  }
  if (error) out.error(`lullctl: ${error.code}: ${error.message}`);
  return code;
}
