// The event stream `backup --wait` follows (a job, or a group run): from the start, reconnecting
// after a break and saying so on stderr, so that a restarted agent does not end the wait.
import type { Event } from "@lull/proto";
import type { CommandContext } from "./commands/context.js";
import { followEvents } from "./event-follower.js";
import type { ProgressReporter } from "./progress.js";

export function followForWait(
  ctx: CommandContext,
  progress: ProgressReporter,
  signal: AbortSignal,
  filter: { guestId: string; jobId: string; groupRunId?: string },
): AsyncGenerator<Event, void, undefined> {
  const { out, clock } = ctx;
  return followEvents(ctx.api, {
    ...filter,
    afterSeq: 0,
    reconnect: true,
    giveUpAfterMs: ctx.settings.waitReconnectGiveUpMs,
    signal,
    clock,
    onBreak: (err, retryInMs) => {
      progress.clear();
      out.error(`lullctl: lost the agent's event stream (${err.code}: ${err.message}); retrying in ${retryInMs} ms`);
    },
    onRecovered: () => out.error("lullctl: event stream restored; nothing was missed"),
  });
}
