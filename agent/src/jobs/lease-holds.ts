// Stack leases kept alive by the controllers' own event streams. A controller renews its lease at a
// third of its TTL; with many controllers on a node that is a steady stream of unary calls (2,000
// stacks with a 15 s TTL: 400 TLS calls a second, each authenticated and committed), although each
// of those controllers already holds a WatchEvents stream open to the same agent. A stream that
// names its lease (WatchEventsRequest.hold_lease) makes the agent the one that renews it: every
// hold is renewed at a third of its TTL, all that are due in one commit, for as long as the stream
// is open. When the stream ends the hold goes and the lease runs out after its TTL as before,
// unless the controller renews it again (it does, at once). A renewal that fails ends the holding
// streams with the error, so their controllers fall back to renewing by call.
import { leaseRenewalInterval, type Clock, type Logger } from "@lull/shared";

export interface HeldLease {
  guestId: string;
  stack: string;
  controllerId: string;
  ttlMs: number;
}

/** One lease and the streams that hold it (a controller that reconnects may briefly hold it twice). */
interface Held {
  lease: HeldLease;
  /** When the lease is next renewed (a third of its TTL after the last renewal). */
  dueAt: number;
  /** Each holding stream's end: called when a renewal fails. */
  holders: Set<(err: unknown) => void>;
}

export interface LeaseHoldsDeps {
  /** Renews every lease in `leases` in one commit (RegisterStack's renewal, by the agent). */
  renew: (leases: readonly HeldLease[]) => Promise<void>;
  clock: Clock;
  log: Logger;
}

const keyOf = (l: { guestId: string; stack: string; controllerId: string }) => `${l.guestId}\u0000${l.stack}\u0000${l.controllerId}`;

/** How early a lease may be renewed to share a commit: a third of its interval, at most a second. */
const slackOf = (ttlMs: number) => Math.min(1_000, Math.floor(leaseRenewalInterval(ttlMs) / 3));

export class LeaseHolds {
  private readonly held = new Map<string, Held>();
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
    let entry = this.held.get(key);
    if (!entry) {
      entry = { lease, dueAt: this.deps.clock.now() + leaseRenewalInterval(lease.ttlMs), holders: new Set() };
      this.held.set(key, entry);
      this.schedule(entry.dueAt);
    }
    entry.holders.add(lost);
    const mine = entry;
    return () => {
      mine.holders.delete(lost);
      if (mine.holders.size === 0 && this.held.get(key) === mine) this.held.delete(key);
    };
  }

  /** Drops every hold of the lease (UnregisterStack: no stream renews it after that). */
  release(lease: { guestId: string; stack: string; controllerId: string }): void {
    this.held.delete(keyOf(lease));
  }

  /** Leases held now (metrics, tests). */
  get size(): number {
    return this.held.size;
  }

  close(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.held.clear();
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
    // The renewal under way reschedules when it is done.
    if (this.renewing) return;
    const now = this.deps.clock.now();
    // What falls due within the slack is renewed with it: one commit for them all, and leases
    // renewed together stay together (a node's controllers do not each get their own commit).
    const due = [...this.held.entries()].filter(([, h]) => h.dueAt - slackOf(h.lease.ttlMs) <= now);
    this.renewing = true;
    try {
      if (due.length > 0) await this.renewAll(due);
    } finally {
      this.renewing = false;
    }
    let next = Infinity;
    for (const h of this.held.values()) next = Math.min(next, h.dueAt);
    if (next !== Infinity) this.schedule(next);
  }

  private async renewAll(due: ReadonlyArray<[string, Held]>): Promise<void> {
    try {
      await this.deps.renew(due.map(([, h]) => h.lease));
      const after = this.deps.clock.now();
      for (const [, h] of due) h.dueAt = after + leaseRenewalInterval(h.lease.ttlMs);
    } catch (err) {
      this.deps.log.warn({ err: err instanceof Error ? err.message : String(err), leases: due.length }, "renewing the leases held by event streams failed — their streams end, their controllers renew by call");
      for (const [key, h] of due) {
        if (this.held.get(key) !== h) continue;
        this.held.delete(key);
        for (const lost of h.holders) lost(err);
      }
    }
  }
}
