// Which failed calls the agent client tries again: only errors that are not terminal (see
// shared/ERRORS.md), only while the caller's signal has not aborted, and at most `attempts` times
// in all. Every attempt has its own deadline (the client's `callTimeoutMs`).
import { fromServiceError, type LullError } from "../errors.js";

export interface RetryPolicy {
  /** Attempts in all, the first included; 1 means no retry. */
  attempts: number;
  /** Pause before the second attempt; doubled before each further one. */
  backoffMs: number;
}

export const NO_RETRY: Readonly<RetryPolicy> = Object.freeze({ attempts: 1, backoffMs: 0 });

function pause(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
  });
}

/** Runs `attempt` until it succeeds, fails terminally, the policy's attempts are used up or `signal` aborts. */
export async function withRetry<T>(attempt: () => Promise<T>, policy: Readonly<RetryPolicy>, signal?: AbortSignal): Promise<T> {
  let backoff = policy.backoffMs;
  for (let n = 1; ; n++) {
    try {
      return await attempt();
    } catch (err) {
      const e: LullError = fromServiceError(err);
      if (e.terminal || n >= policy.attempts || signal?.aborted) throw e;
    }
    await pause(backoff, signal);
    backoff *= 2;
    if (signal?.aborted) throw signal.reason;
  }
}
