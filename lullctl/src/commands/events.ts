// `lullctl events [--guest G] [--job J] [--group RUN] [--after SEQ] [--follow]`: prints persisted phase events
// and, with --follow, live ones, reconnecting after a broken stream without gaps or repeats.
import type { Command } from "../args.js";
import { followEvents } from "../event-follower.js";
import { eventJson } from "../json-views.js";
import { eventLine } from "../render.js";
import { EXIT, printJson, type CommandContext } from "./context.js";

/**
 * Without --follow the stream has no end of its own: lullctl stops at the agent's last sequence
 * number (read first), or, when a filter hides that event, once the replay has been quiet this long.
 */
export const REPLAY_IDLE_MS = 500;

export async function eventsCommand(ctx: CommandContext, cmd: Extract<Command, { name: "events" }>): Promise<number> {
  const { out } = ctx;
  let lastSeq = Infinity;
  if (!cmd.follow) {
    lastSeq = (await ctx.api.getAgentInfo()).lastEventSeq;
    if (lastSeq <= cmd.afterSeq) return EXIT.ok;
  }
  let outage = false;
  let printed = cmd.afterSeq;
  const events = followEvents(ctx.api, {
    guestId: cmd.guest ?? "",
    jobId: cmd.jobId ?? "",
    groupRunId: cmd.groupRunId,
    afterSeq: cmd.afterSeq,
    reconnect: cmd.follow,
    giveUpAfterMs: Infinity,
    ...(cmd.follow ? {} : { idleEndMs: REPLAY_IDLE_MS }),
    signal: ctx.signal,
    clock: ctx.clock,
    onBreak: (err) => {
      if (!outage) {
        out.error(`lullctl: event stream broken (${err.code}: ${err.message}); reconnecting to resume after #${printed}`);
      }
      outage = true;
    },
    onRecovered: () => {
      outage = false;
      out.error("lullctl: event stream reconnected");
    },
  });
  for await (const event of events) {
    if (ctx.json) printJson(out, eventJson(event));
    else out.line(eventLine(event));
    printed = event.seq;
    if (event.seq >= lastSeq) break;
  }
  return ctx.signal.aborted ? EXIT.interrupted : EXIT.ok;
}
