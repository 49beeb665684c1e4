// Follows a consistency group run to its end for `backup --group --wait`: one stream of the run's
// own events and its members', a line each (`group`, or the member's guest), archive progress of
// all members summed, and the run as it ended. Like a single job, stacks that resume at the end
// report their downtime after the terminal phase: the watcher waits a bounded time for those.
import { EventKind, StackState, type Event, type GroupRun } from "@lull/proto";
import { LullError, isTerminal } from "@lull/shared";
import type { CommandContext } from "./commands/context.js";
import { followForWait } from "./wait-events.js";
import { formatOffset } from "./format.js";
import { RESUME_REPORT_WAIT_MS } from "./job-watcher.js";
import { progressReporter } from "./progress.js";
import { eventText } from "./render.js";

/** `guest/stack` of every stack a member stopped and that has not reported resumed. */
function stillStopped(run: GroupRun): Set<string> {
  const stopped = new Set<string>();
  for (const m of run.members) {
    for (const s of m.stacks) {
      if (s.state === StackState.STACK_STATE_QUIESCED || s.state === StackState.STACK_STATE_PENDING) stopped.add(`${m.guestId}/${s.stack}`);
    }
  }
  return stopped;
}

/** The run once it ended, or undefined when the watch was interrupted. */
export async function watchGroupToEnd(ctx: CommandContext, run: GroupRun): Promise<GroupRun | undefined> {
  if (isTerminal(run.phase)) return run;
  const { out, clock } = ctx;
  const quiet = ctx.json;
  const localStart = clock.now();
  const base = run.createdAt?.getTime();
  const offsetOf = (e: Event) => (base !== undefined && e.at ? e.at.getTime() - base : clock.now() - localStart);
  const width = Math.max(5, ...run.guestIds.map((g) => g.length));
  const progress = progressReporter({ out, now: () => clock.now() });
  const bytes = new Map<string, { done: number; total: number }>();
  const watch = new AbortController();
  const onInterrupt = () => watch.abort();
  ctx.signal.addEventListener("abort", onInterrupt, { once: true });
  let ended: GroupRun | undefined;
  let waitingFor = new Set<string>();
  let graceTimer: NodeJS.Timeout | undefined;

  const events = followForWait(ctx, progress, watch.signal, { guestId: "", jobId: "", groupRunId: run.id });

  try {
    for await (const event of events) {
      if (event.groupRunId !== run.id) continue;
      if (event.kind === EventKind.EVENT_KIND_PROGRESS) {
        bytes.set(event.jobId, { done: event.bytesDone, total: event.bytesTotal });
        const sum = [...bytes.values()].reduce((a, b) => ({ done: a.done + b.done, total: a.total + b.total }), { done: 0, total: 0 });
        if (!quiet) progress.update(sum.done, sum.total);
        continue;
      }
      if (!quiet) {
        progress.clear();
        out.line(`${formatOffset(offsetOf(event))}  ${(event.guestId || "group").padEnd(width)}  ${eventText(event)}`);
        progress.redraw();
      }
      if (ended && event.kind === EventKind.EVENT_KIND_STACK && event.stackState === StackState.STACK_STATE_RESUMED) {
        waitingFor.delete(`${event.guestId}/${event.stack}`);
        if (waitingFor.size === 0) break;
      }
      if (!ended && event.kind === EventKind.EVENT_KIND_GROUP && isTerminal(event.phase)) {
        ended = await ctx.api.getGroup({ groupRunId: run.id });
        waitingFor = stillStopped(ended);
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
  if (ended) return ctx.api.getGroup({ groupRunId: run.id });
  throw new LullError("LULL_E_AGENT_UNREACHABLE", `the event stream of group run ${run.id} ended before the run did`);
}
