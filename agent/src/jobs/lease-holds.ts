// Stack leases kept alive by the controllers' own event streams. A controller renews its lease at a
// third of its TTL; with many controllers on a node that is a steady stream of unary calls (2,000
// stacks with a 15 s TTL: 400 TLS calls a second, each authenticated and committed), although each
// of those controllers already holds a WatchEvents stream open to the same agent. A stream that
// names its lease (WatchEventsRequest.hold_lease) makes the agent the one that renews it: every
// hold is renewed at a third of its TTL, all that are due in one commit, for as long as the stream
// is open. When the stream ends the hold goes and the lease runs out after its TTL as before,
// unless the controller renews it again (it does, at once). A renewal that fails ends the holding
// streams with the error, so their controllers fall back to renewing by call.
import type { Clock, Logger } from "@lull/shared";

export interface HeldLease {
  guestId: string;
  stack: string;
  controllerId: string;
  ttlMs: number;
}

interface Hold {
  lease: HeldLease;
  /** When the lease is next renewed (a third of its TTL after the last renewal). */
  dueAt: number;
  /** Ends the stream that holds it. */
  lost: (err: unknown) => void;
}

export interface LeaseHoldsDeps {
  /** Renews every lease in `leases` in one commit (RegisterStack's renewal, by the agent). */
  renew: (leases: readonly HeldLease[]) => Promise<void>;
  clock: Clock;
  log: Logger;
}

const keyOf = (l: { guestId: string; stack: string; controllerId: string }) => `${l.guestId}\u0000${l.stack}\u0000${l.controllerId}`;

export class LeaseHolds {
  /** key → the streams holding that lease (a controller that reconnects may briefly hold it twice). */
  private readonly holds = new Map<string, Set<Hold>>();
  private timer: NodeJS.Timeout | undefined;
  private nextAt = Infinity;
  private renewing = false;

  constructor(private readonly deps: LeaseHoldsDeps) {}

  /**
   * Holds `lease`, just renewed by the caller, until the returned release is called. `lost` is
   * called (and the hold dropped) when a renewal fails.
   */
  hold(lease: HeldLease, lost: (err: unknown) => void): () => void {
    const key = keyOf(lease);
    const hold: Hold = { lease, dueAt: this.deps.clock.now() + renewalInterval(lease.ttlMs), lost };
    let set = this.holds.get(key);
    if (!set) this.holds.set(key, (set = new Set()));
    set.add(hold);
    this.schedule(hold.dueAt);
    return () => this.drop(key, hold);
  }

  /** Drops every hold of the lease (UnregisterStack: no stream renews it after that). */
  release(lease: { guestId: string; stack: string; controllerId: string }): void {
    this.holds.delete(keyOf(lease));
  }

  /** Leases held now (metrics, tests). */
  get size(): number {
    return this.holds.size;
  }

  close(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.holds.clear();
  }

  private drop(key: string, hold: Hold): void {
    const set = this.holds.get(key);
    if (!set) return;
    set.delete(hold);
    if (set.size === 0) this.holds.delete(key);
  }

  private schedule(at: number): void {
    if (at >= this.nextAt && this.timer) return;
    clearTimeout(this.timer);
    this.nextAt = at;
    this.timer = setTimeout(() => void this.tick(), Math.max(0, at - this.deps.clock.now()));
    this.timer.unref();
  }

  private async tick(): Promise<void> {
    this.timer = undefined;
    this.nextAt = Infinity;
    if (this.renewing) return;
    const now = this.deps.clock.now();
    const due: Array<{ key: string; holds: Hold[] }> = [];
    for (const [key, set] of this.holds) {
      const holds = [...set];
      // What falls due within the slack is renewed with it: one commit for them all, and holds
      // renewed together stay together (a node's controllers do not each get their own commit).
      if (holds.some((h) => h.dueAt - slackOf(h.lease.ttlMs) <= now)) due.push({ key, holds });
    }
    this.renewing = true;
    try {
      if (due.length > 0) {
        try {
          await this.deps.renew(due.map((d) => d.holds[0]!.lease));
          const after = this.deps.clock.now();
          for (const d of due) for (const h of d.holds) h.dueAt = after + renewalInterval(h.lease.ttlMs);
        } catch (err) {
          this.deps.log.warn({ err: err instanceof Error ? err.message : String(err), leases: due.length }, "renewing the leases held by event streams failed — their streams end, their controllers renew by call");
          for (const d of due) {
            if (this.holds.get(d.key) === undefined) continue;
            this.holds.delete(d.key);
            for (const h of d.holds) h.lost(err);
          }
        }
      }
    } finally {
      this.renewing = false;
    }
    let next = Infinity;
    for (const set of this.holds.values()) for (const h of set) next = Math.min(next, h.dueAt);
    if (next !== Infinity) this.schedule(next);
  }
}

/** A third of the TTL, as a controller renews its own (never more often than every 100 ms). */
export function renewalInterval(ttlMs: number): number {
  return Math.max(100, Math.floor(ttlMs / 3));
}

/** How early a hold may be renewed to share a commit: a third of its interval, at most a second. */
const slackOf = (ttlMs: number) => Math.min(1_000, Math.floor(renewalInterval(ttlMs) / 3));
