// Follows a consistency group run to its end for `backup --group --wait` (see wait-events.ts): one
// stream of the run's own events and its members', a line each (`group`, or the member's guest),
// archive progress of all members summed, and the run as it ended. Like a single job, stacks that
// resume at the end report their downtime after the terminal phase: the watch waits a bounded time for those.
import { EventKind, StackState, type GroupRun } from "@lull/proto";
import { isTerminal } from "@lull/shared";
import type { CommandContext } from "./commands/context.js";
import { watchToEnd } from "./wait-events.js";

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
  const width = Math.max(5, ...run.guestIds.map((g) => g.length));
  /** Each member's latest progress, by job id: the bar shows their sum. */
  const bytes = new Map<string, { done: number; total: number }>();
  return watchToEnd(ctx, {
    name: `group run ${run.id}`,
    noun: "run",
    createdAt: run.createdAt,
    filter: { guestId: "", jobId: "", groupRunId: run.id },
    owns: (e) => e.groupRunId === run.id,
    isEnd: (e) => e.kind === EventKind.EVENT_KIND_GROUP && isTerminal(e.phase),
    progress: (e) => {
      bytes.set(e.jobId, { done: e.bytesDone, total: e.bytesTotal });
      return [...bytes.values()].reduce((a, b) => ({ done: a.done + b.done, total: a.total + b.total }), { done: 0, total: 0 });
    },
    label: (e) => (e.guestId || "group").padEnd(width),
    stackKey: (e) => `${e.guestId}/${e.stack}`,
    fetch: () => ctx.api.getGroup({ groupRunId: run.id }),
    stillStopped,
  });
}
