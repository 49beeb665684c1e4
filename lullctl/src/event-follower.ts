// Follows the agent's event stream across breaks: after a broken or ended stream it reconnects
// with backoff and asks for the events after the last sequence number it yielded, and it drops any
// event at or below that number. So a watcher misses nothing and sees nothing twice.
import type { Event } from "@lull/proto";
import { LullError, asLullError, systemClock, type Clock, type ErrorCode } from "@lull/shared";
import type { AgentApi } from "@lull/shared";

export interface FollowOptions {
  /** Empty: every guest / every job. */
  guestId: string;
  jobId: string;
  /** A consistency group run: its own events and its member jobs'. */
  groupRunId?: string | undefined;
  /** Yield only events with a greater sequence number. */
  afterSeq: number;
  /** Reconnect after a broken or ended stream (true), or end / throw (false). */
  reconnect: boolean;
  /** With `reconnect`: throw LULL_E_AGENT_UNREACHABLE after failing this long without an event. */
  giveUpAfterMs: number;
  /** End quietly once no event has arrived for this long (for "print what is persisted, then exit"). */
  idleEndMs?: number;
  backoff?: { initialMs: number; maxMs: number };
  signal: AbortSignal;
  clock?: Clock;
  /** Told before each reconnect wait. */
  onBreak?: (error: LullError, retryInMs: number) => void;
  /** Told when an event arrives after one or more breaks. */
  onRecovered?: () => void;
}

/** Errors that a reconnect cannot fix: the request itself is wrong or not allowed. */
const NOT_RETRYABLE: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  "LULL_E_INVALID_ARGUMENT",
  "LULL_E_UNKNOWN_GUEST",
  "LULL_E_JOB_NOT_FOUND",
  "LULL_E_GROUP_NOT_FOUND",
  "LULL_E_UNAUTHENTICATED",
  "LULL_E_PERMISSION_DENIED",
  "LULL_E_NODE_CREDENTIAL",
]);

export async function* followEvents(api: AgentApi, options: FollowOptions): AsyncGenerator<Event, void, undefined> {
  const clock = options.clock ?? systemClock;
  const { initialMs, maxMs } = options.backoff ?? { initialMs: 200, maxMs: 2_000 };
  const outer = options.signal;
  let lastSeq = options.afterSeq;
  let delay = initialMs;
  let failingSince: number | undefined;
  let broken = false;

  while (!outer.aborted) {
    const attempt = new AbortController();
    const stopAttempt = () => attempt.abort(outer.reason);
    outer.addEventListener("abort", stopAttempt, { once: true });
    let idleFired = false;
    let idleTimer: NodeJS.Timeout | undefined;
    const armIdle = () => {
      if (options.idleEndMs === undefined) return;
      clearTimeout(idleTimer);
      idleTimer = setTimeout(() => {
        idleFired = true;
        attempt.abort();
      }, options.idleEndMs);
    };
    let error: LullError | undefined;
    try {
      armIdle();
      const request = {
        guestId: options.guestId,
        jobId: options.jobId,
        afterSeq: lastSeq,
        ...(options.groupRunId ? { groupRunId: options.groupRunId } : {}),
      };
      for await (const event of api.watchEvents(request, attempt.signal)) {
        if (event.seq <= lastSeq) continue;
        lastSeq = event.seq;
        failingSince = undefined;
        delay = initialMs;
        if (broken) {
          broken = false;
          options.onRecovered?.();
        }
        armIdle();
        yield event;
      }
    } catch (err) {
      error = asLullError(err);
    } finally {
      clearTimeout(idleTimer);
      outer.removeEventListener("abort", stopAttempt);
    }
    if (outer.aborted || idleFired) return;
    if (error && NOT_RETRYABLE.has(error.code)) throw error;
    if (!options.reconnect) {
      if (error) throw error;
      return;
    }
    const now = clock.now();
    failingSince ??= now;
    const cause = error ?? new LullError("LULL_E_AGENT_UNREACHABLE", "the agent ended the event stream");
    if (now - failingSince >= options.giveUpAfterMs) {
      throw new LullError(
        "LULL_E_AGENT_UNREACHABLE",
        `lost the agent's event stream for ${Math.round((now - failingSince) / 1000)} s: ${cause.message}`,
        { cause },
      );
    }
    broken = true;
    options.onBreak?.(cause, delay);
    try {
      await clock.sleep(delay, outer);
    } catch {
      return;
    }
    delay = Math.min(delay * 2, maxMs);
  }
}
