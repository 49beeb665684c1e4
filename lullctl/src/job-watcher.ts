// Follows one job to its end for `backup --wait` (see wait-events.ts): one line per phase (and
// per stack change) with its offset from the job's start, archive progress in between, and the
// job as it ended, once its stopped stacks reported that they run again (or the wait for that ran out).
import { EventKind, StackState, type Event, type Job } from "@lull/proto";
import { isTerminal } from "@lull/shared";
import type { CommandContext } from "./commands/context.js";
import { timelineJson } from "./timeline-json.js";
import { watchToEnd } from "./wait-events.js";

const stillStopped = (job: Job) =>
  new Set(job.stacks.filter((s) => s.state === StackState.STACK_STATE_QUIESCED || s.state === StackState.STACK_STATE_PENDING).map((s) => s.stack));

export interface JobWatchOptions {
  /** Ends the watch at the first of the job's events for which it holds (`lullctl wait --until snapshotted`). */
  stopAt?: ((e: Event) => boolean) | undefined;
}

/**
 * The job once it reached a terminal phase (or `stopAt`), or undefined when the watch was
 * interrupted. With `--json` each of the job's events is printed as its timeline line as it comes.
 */
export async function watchJobToEnd(ctx: CommandContext, job: Job, options: JobWatchOptions = {}): Promise<Job | undefined> {
  if (isTerminal(job.phase)) return job;
  return watchToEnd(ctx, {
    jsonLine: timelineJson,
    stopAt: options.stopAt,
    name: `job ${job.id}`,
    noun: "job",
    createdAt: job.createdAt,
    filter: { guestId: job.guestId, jobId: job.id },
    owns: (e) => e.jobId === job.id,
    isEnd: (e) => e.kind === EventKind.EVENT_KIND_PHASE && isTerminal(e.phase),
    progress: (e) => ({ done: e.bytesDone, total: e.bytesTotal }),
    label: () => "",
    stackKey: (e) => e.stack,
    fetch: () => ctx.api.getJob({ guestId: job.guestId, jobId: job.id }),
    stillStopped,
  });
}
