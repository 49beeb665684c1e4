// How `backup --wait` follows a job or a group run to its end: one event stream from the start,
// reconnecting after a break (and saying so on stderr) so that a restarted agent does not end the
// wait; a line per event with its offset from the start, archive progress in between, and the
// target as it ended. A stack resumed at the end (or started slower than the archive was written)
// reports its downtime after the terminal phase: the watch waits a bounded time for those reports.
import { EventKind, StackState, type Event } from "@lull/proto";
import { LullError, isTerminal } from "@lull/shared";
import type { CommandContext } from "./commands/context.js";
import { followEvents } from "./event-follower.js";
import { formatOffset } from "./format.js";
import { progressReporter } from "./progress.js";
import { eventText } from "./render.js";

/** After the terminal phase, how long to wait for stopped stacks to report that they run again. */
export const RESUME_REPORT_WAIT_MS = 10_000;

/** What a watch follows: one job, or one group run. */
export interface WaitTarget<T> {
  /** `job j-…` or `group run g-…`; `noun` is how the end-of-stream error names it again. */
  name: string;
  noun: string;
  createdAt: Date | undefined;
  filter: { guestId: string; jobId: string; groupRunId?: string };
  /** Whether an event of the stream is about the target. */
  owns(e: Event): boolean;
  /** Whether an event is the target's own terminal phase. */
  isEnd(e: Event): boolean;
  /** Bytes archived so far, given a progress event. */
  progress(e: Event): { done: number; total: number };
  /** What the line shows between the offset and the event's text ("" for none). */
  label(e: Event): string;
  /** How a STACK event names its stack, as `stillStopped` does. */
  stackKey(e: Event): string;
  fetch(): Promise<T>;
  /** The stacks of the ended target that stopped and have not reported resumed. */
  stillStopped(ended: T): Set<string>;
  /** `--json`: the line printed for each event of the target (absent: nothing is printed while watching). */
  jsonLine?: ((e: Event, offsetMs: number) => unknown) | undefined;
  /** Ends the watch early, at the first event of the target for which it holds (the target is fetched then). */
  stopAt?: ((e: Event) => boolean) | undefined;
}

/** The target once it ended, or undefined when the watch was interrupted. */
export async function watchToEnd<T>(ctx: CommandContext, target: WaitTarget<T>): Promise<T | undefined> {
  const { out, clock } = ctx;
  const quiet = ctx.json;
  const localStart = clock.now();
  const base = target.createdAt?.getTime();
  const offsetOf = (e: Event) => (base !== undefined && e.at ? e.at.getTime() - base : clock.now() - localStart);
  const progress = progressReporter({ out, now: () => clock.now() });
  const watch = new AbortController();
  const onInterrupt = () => watch.abort();
  ctx.signal.addEventListener("abort", onInterrupt, { once: true });
  let ended: T | undefined;
  let waitingFor = new Set<string>();
  let graceTimer: NodeJS.Timeout | undefined;

  const events = followEvents(ctx.api, {
    ...target.filter,
    afterSeq: 0,
    reconnect: true,
    giveUpAfterMs: ctx.settings.waitReconnectGiveUpMs,
    signal: watch.signal,
    clock,
    onBreak: (err, retryInMs) => {
      progress.clear();
      out.error(`lullctl: lost the agent's event stream (${err.code}: ${err.message}); retrying in ${retryInMs} ms`);
    },
    onRecovered: () => out.error("lullctl: event stream restored; nothing was missed"),
  });

  try {
    for await (const event of events) {
      if (!target.owns(event)) continue;
      if (quiet && target.jsonLine) out.line(JSON.stringify(target.jsonLine(event, offsetOf(event))));
      if (!ended && target.stopAt?.(event)) {
        if (!quiet) {
          progress.clear();
          out.line(`${formatOffset(offsetOf(event))}  ${eventText(event)}`);
        }
        return await target.fetch();
      }
      if (event.kind === EventKind.EVENT_KIND_PROGRESS) {
        const { done, total } = target.progress(event);
        if (!quiet) progress.update(done, total);
        continue;
      }
      if (!quiet) {
        progress.clear();
        const label = target.label(event);
        out.line(`${formatOffset(offsetOf(event))}  ${label ? `${label}  ` : ""}${eventText(event)}`);
        progress.redraw();
      }
      if (ended && event.kind === EventKind.EVENT_KIND_STACK && event.stackState === StackState.STACK_STATE_RESUMED) {
        waitingFor.delete(target.stackKey(event));
        if (waitingFor.size === 0) break;
      }
      if (!ended && target.isEnd(event)) {
        ended = await target.fetch();
        waitingFor = target.stillStopped(ended);
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
  if (ended) return target.fetch();
  throw new LullError("LULL_E_AGENT_UNREACHABLE", `the event stream of ${target.name} ended before the ${target.noun} did`);
}
