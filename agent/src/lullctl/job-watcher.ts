// Follows one job to its end for `backup --wait`: one line per phase (and per stack change) with
// its offset from the job's start, archive progress in between, and the job as it ended. A stack
// resumed at the end (or started slower than the archive was written) reports its downtime after
// the job's terminal phase: the watcher waits a bounded time for those reports.
import { EventKind, StackState, type Event, type Job } from "@lull/proto";
import { LullError, isTerminal } from "@lull/shared";
import type { CommandContext } from "./commands/context.js";
import { followForWait } from "./wait-events.js";
import { formatOffset } from "./format.js";
import { progressReporter } from "./progress.js";
import { eventText } from "./render.js";

/** After the terminal phase, how long to wait for stopped stacks to report that they run again. */
export const RESUME_REPORT_WAIT_MS = 10_000;

const stillStopped = (job: Job) =>
  job.stacks.filter((s) => s.state === StackState.STACK_STATE_QUIESCED || s.state === StackState.STACK_STATE_PENDING).map((s) => s.stack);

/** The job once it reached a terminal phase, or undefined when the watch was interrupted. */
export async function watchJobToEnd(ctx: CommandContext, job: Job): Promise<Job | undefined> {
  if (isTerminal(job.phase)) return job;
  const { out, clock } = ctx;
  const quiet = ctx.json;
  const localStart = clock.now();
  const base = job.createdAt?.getTime();
  const offsetOf = (e: Event) => (base !== undefined && e.at ? e.at.getTime() - base : clock.now() - localStart);
  const progress = progressReporter({ out, now: () => clock.now() });
  const watch = new AbortController();
  const onInterrupt = () => watch.abort();
  ctx.signal.addEventListener("abort", onInterrupt, { once: true });
  let ended: Job | undefined;
  let waitingFor = new Set<string>();
  let graceTimer: NodeJS.Timeout | undefined;

  const events = followForWait(ctx, progress, watch.signal, { guestId: job.guestId, jobId: job.id });

  try {
    for await (const event of events) {
      if (event.jobId !== job.id) continue;
      if (event.kind === EventKind.EVENT_KIND_PROGRESS) {
        if (!quiet) progress.update(event.bytesDone, event.bytesTotal);
        continue;
      }
      if (!quiet) {
        progress.clear();
        out.line(`${formatOffset(offsetOf(event))}  ${eventText(event)}`);
        progress.redraw();
      }
      if (ended && event.kind === EventKind.EVENT_KIND_STACK && event.stackState === StackState.STACK_STATE_RESUMED) {
        waitingFor.delete(event.stack);
        if (waitingFor.size === 0) break;
      }
      if (!ended && event.kind === EventKind.EVENT_KIND_PHASE && isTerminal(event.phase)) {
        ended = await ctx.api.getJob({ guestId: job.guestId, jobId: job.id });
        waitingFor = new Set(stillStopped(ended));
        if (waitingFor.size === 0) break;
        if (!quiet) out.line(`           waiting up to ${RESUME_REPORT_WAIT_MS / 1000} s for ${[...waitingFor].join(", ")} to report resumed`);
        graceTimer = setTimeout(() => watch.abort(), RESUME_REPORT_WAIT_MS);
      }
    }
  } finally {
    clearTimeout(graceTimer);
    ctx.signal.removeEventListener("abort", onInterrupt);
  }
  if (ctx.signal.aborted) return undefined;
  if (ended) return ctx.api.getJob({ guestId: job.guestId, jobId: job.id });
  throw new LullError("LULL_E_AGENT_UNREACHABLE", `the event stream of job ${job.id} ended before the job did`);
}
