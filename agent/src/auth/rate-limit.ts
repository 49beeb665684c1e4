// Per-principal limits on the calls a guest could use to wear the agent down: token buckets on
// chosen methods (RegisterStack, WatchEvents — WatchEventBatches takes from its bucket) and a cap on open watch streams. Refusals are
// LULL_E_RATE_LIMITED (RESOURCE_EXHAUSTED). State lives in the limiter instance; its keys are
// principals that passed authentication, so it is bounded by the number of tokens.
import { LullError, type Clock } from "@lull/shared";
import type { Principal } from "./principal.js";

export interface BucketRate {
  /** Calls allowed at once. */
  burst: number;
  /** Refill, calls per second. */
  perSecond: number;
}

export interface CallLimits {
  /** Buckets per method (lowerCamel RPC name). */
  rates: Readonly<Record<string, BucketRate>>;
  /** Open server streams per principal. */
  maxStreams: number;
  /** Open server streams of every limited principal together (the agent's memory bound); default unbounded. */
  maxStreamsTotal?: number | undefined;
}

/** Methods that take their calls from another method's bucket: the two forms of one stream. */
const SHARED_BUCKETS: Readonly<Record<string, string>> = { watchEventBatches: "watchEvents" };

interface Bucket {
  tokens: number;
  at: number;
}

export class CallLimiter {
  private readonly buckets = new Map<string, Bucket>();
  private readonly streams = new Map<string, number>();
  private totalStreams = 0;

  constructor(
    private readonly limits: CallLimits,
    private readonly clock: Clock,
  ) {}

  /** The local operator (root on the socket) is not limited. */
  private static exempt(p: Principal): boolean {
    return p.kind === "operator" && p.via === "socket";
  }

  /** Takes one call from the principal's bucket for `method`, or throws LULL_E_RATE_LIMITED. */
  admit(calledMethod: string, principal: Principal): void {
    const method = SHARED_BUCKETS[calledMethod] ?? calledMethod;
    const rate = this.limits.rates[method];
    if (!rate || CallLimiter.exempt(principal)) return;
    const key = `${principal.id}\u0000${method}`;
    const now = this.clock.now();
    const b = this.buckets.get(key) ?? { tokens: rate.burst, at: now };
    b.tokens = Math.min(rate.burst, b.tokens + ((now - b.at) / 1000) * rate.perSecond);
    b.at = now;
    if (b.tokens < 1) {
      this.buckets.set(key, b);
      throw new LullError("LULL_E_RATE_LIMITED", `too many ${method} calls (at most ${rate.burst} at once, ${rate.perSecond}/s); retry later`);
    }
    b.tokens -= 1;
    this.buckets.set(key, b);
  }

  /** Counts an open stream of the principal; the returned function (idempotent) releases it. */
  openStream(principal: Principal): () => void {
    if (CallLimiter.exempt(principal)) return () => undefined;
    const open = this.streams.get(principal.id) ?? 0;
    if (open >= this.limits.maxStreams) {
      throw new LullError("LULL_E_RATE_LIMITED", `too many open event streams for this credential (at most ${this.limits.maxStreams}: limits.maxWatchStreams)`);
    }
    const total = this.limits.maxStreamsTotal;
    if (total !== undefined && this.totalStreams >= total) {
      throw new LullError("LULL_E_RATE_LIMITED", `the agent has ${this.totalStreams} open event streams, its limit (limits.maxWatchStreamsTotal); retry later`);
    }
    this.streams.set(principal.id, open + 1);
    this.totalStreams += 1;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.totalStreams -= 1;
      const left = (this.streams.get(principal.id) ?? 1) - 1;
      if (left <= 0) this.streams.delete(principal.id);
      else this.streams.set(principal.id, left);
    };
  }

  /** Open streams of every limited principal (tests, diagnostics). */
  get openStreamsTotal(): number {
    return this.totalStreams;
  }

  /** Open streams of a principal (tests, diagnostics). */
  openStreams(principalId: string): number {
    return this.streams.get(principalId) ?? 0;
  }
}
