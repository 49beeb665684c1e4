// Routes each notification through the matchers to its targets and delivers it in the
// background: an attempt per target, retried with doubling backoff while the failure is
// retryable. Delivery never blocks a backup; close() waits a bounded time for what is in flight.
import type { Clock, Logger } from "@lull/shared";
import type { Fact } from "../observe/facts.js";
import type { MatcherConfig, NotificationsConfig } from "./config.js";
import { notificationFor, type Notification } from "./notification.js";
import { DeliveryError, createSender, type Sender } from "./targets.js";

const MAX_BACKOFF_MS = 300_000;

export function matches(matcher: MatcherConfig, n: Notification): boolean {
  if (matcher.severity && !matcher.severity.includes(n.severity)) return false;
  // A schedule concerns each guest it covers: a matcher by guest matches when it names one of them.
  if (matcher.guests && !n.guests.some((g) => matcher.guests?.includes(g))) return false;
  if (matcher.stacks && !n.stacks.some((s) => matcher.stacks?.includes(s))) return false;
  return true;
}

/** Names of the targets a notification goes to (each once, in config order). */
export function routeOf(config: NotificationsConfig, n: Notification): string[] {
  const wanted = new Set(config.matchers.filter((m) => matches(m, n)).flatMap((m) => m.targets));
  return config.targets.map((t) => t.name).filter((name) => wanted.has(name));
}

export interface DispatcherDeps {
  config: NotificationsConfig;
  node: string;
  log: Logger;
  clock: Clock;
}

export interface DeliveryOutcome {
  target: string;
  delivered: boolean;
  attempts: number;
  error?: string;
}

export class NotificationDispatcher {
  private readonly senders = new Map<string, { sender: Sender; retries: number; backoffMs: number; timeoutMs: number }>();
  private readonly inFlight = new Set<Promise<DeliveryOutcome>>();
  private readonly closing = new AbortController();

  /** Reads every secret and checks every template now: a bad target fails the start with LULL_E_CONFIG_INVALID. */
  constructor(private readonly deps: DispatcherDeps) {
    deps.config.targets.forEach((t, i) => {
      this.senders.set(t.name, { sender: createSender(t, `notifications.targets.${i}`), retries: t.retries, backoffMs: t.backoffMs, timeoutMs: t.timeoutMs });
    });
  }

  /** Feeds a fact from the fact feed. */
  observe(fact: Fact): void {
    const n = notificationFor(fact, this.deps.node);
    if (n) this.dispatch(n);
  }

  /** Starts delivering `n` to every matched target; the promise settles when all attempts ended. */
  dispatch(n: Notification): Promise<DeliveryOutcome[]> {
    const route = routeOf(this.deps.config, n);
    if (route.length === 0) this.deps.log.debug({ event: n.event, guest: n.guest }, "notification matched no target");
    return Promise.all(
      route.map((name) => {
        const p = this.deliver(name, n);
        this.inFlight.add(p);
        void p.finally(() => this.inFlight.delete(p));
        return p;
      }),
    );
  }

  private async deliver(name: string, n: Notification): Promise<DeliveryOutcome> {
    const target = this.senders.get(name);
    if (!target) return { target: name, delivered: false, attempts: 0, error: "no such target" };
    const log = this.deps.log.child({ target: name, type: target.sender.type, event: n.event, guest: n.guest, jobId: n.jobId });
    let lastError = "";
    for (let attempt = 1; attempt <= target.retries + 1; attempt++) {
      if (this.closing.signal.aborted) break;
      const signal = AbortSignal.any([this.closing.signal, AbortSignal.timeout(target.timeoutMs)]);
      try {
        await target.sender.send(n, signal);
        log.info({ attempt }, "notification delivered");
        return { target: name, delivered: true, attempts: attempt };
      } catch (err) {
        lastError = err instanceof Error ? err.message : String(err);
        const retryable = !(err instanceof DeliveryError) || err.retryable;
        if (!retryable || attempt > target.retries) {
          log.error({ attempt, error: lastError, retryable }, "notification failed");
          return { target: name, delivered: false, attempts: attempt, error: lastError };
        }
        const waitMs = Math.min(MAX_BACKOFF_MS, target.backoffMs * 2 ** (attempt - 1));
        log.warn({ attempt, error: lastError, retryInMs: waitMs }, "notification attempt failed");
        await this.deps.clock.sleep(waitMs, this.closing.signal).catch(() => undefined);
      }
    }
    log.error({ error: lastError || "agent stopping" }, "notification failed");
    return { target: name, delivered: false, attempts: 0, error: lastError || "agent stopping" };
  }

  /** Waits up to `graceMs` for deliveries in flight, then abandons the rest. */
  async close(graceMs: number): Promise<void> {
    const pending = [...this.inFlight];
    if (pending.length > 0) {
      const timer = new Promise<void>((r) => setTimeout(r, graceMs).unref());
      await Promise.race([Promise.allSettled(pending), timer]);
    }
    this.closing.abort();
    for (const { sender } of this.senders.values()) sender.close();
  }
}
