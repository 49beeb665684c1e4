// Follows one job to its end for `backup --wait`: one line per phase (and per stack change) with
// its offset from the job's start, archive progress in between, and the job as it ended.
import { EventKind, type Event, type Job } from "@lull/proto";
import { LullError, isTerminal } from "@lull/shared";
import type { CommandContext } from "./commands/context.js";
import { followEvents } from "./event-follower.js";
import { formatOffset } from "./format.js";
import { progressReporter } from "./progress.js";
import { eventText } from "./render.js";

/** The job once it reached a terminal phase, or undefined when the watch was interrupted. */
export async function watchJobToEnd(ctx: CommandContext, job: Job): Promise<Job | undefined> {
  if (isTerminal(job.phase)) return job;
  const { out, clock } = ctx;
  const quiet = ctx.json;
  const localStart = clock.now();
  const base = job.createdAt?.getTime();
  const offsetOf = (e: Event) =>
    base !== undefined && e.at ? e.at.getTime() - base : clock.now() - localStart;
  const progress = progressReporter({ out, now: () => clock.now() });

  const events = followEvents(ctx.api, {
    guestId: job.guestId,
    jobId: job.id,
    afterSeq: 0,
    reconnect: true,
    giveUpAfterMs: ctx.settings.waitReconnectGiveUpMs,
    signal: ctx.signal,
    clock,
    onBreak: (err, retryInMs) => {
      progress.clear();
      out.error(`lullctl: lost the agent's event stream (${err.code}: ${err.message}); retrying in ${retryInMs} ms`);
    },
    onRecovered: () => out.error("lullctl: event stream restored; nothing was missed"),
  });

  for await (const event of events) {
    if (event.jobId !== job.id) continue;
    if (event.kind === EventKind.EVENT_KIND_PROGRESS) {
      if (!quiet) progress.update(event.bytesDone, event.bytesTotal);
      continue;
    }
    if (!quiet) {
      progress.clear();
      out.line(`${formatOffset(offsetOf(event))}  ${eventText(event)}`);
    }
    if (event.kind === EventKind.EVENT_KIND_PHASE && isTerminal(event.phase)) {
      return ctx.api.getJob({ guestId: job.guestId, jobId: job.id });
    }
  }
  if (ctx.signal.aborted) return undefined;
  throw new LullError("LULL_E_AGENT_UNREACHABLE", `the event stream of job ${job.id} ended before the job did`);
}
