// Stale verification: a stack that declares a check (`verify.checks`) and has no point that passed
// verification for longer than `verify.staleAfterDays` — counted from its verified marker's time,
// or, never verified, from its guest's first point (the same age `LullVerificationStale` in
// ops/alert-rules.yaml reads from lull_verify_last_success_timestamp_seconds). Looked at when the
// agent starts and every hour; each stale episode is told once, as a `verification-stale` fact,
// and again only after the stack was fresh and went stale again. What was told is in the database
// (written before the fact is published), so a restart storm tells nothing twice.
import type { Clock, Logger } from "@lull/shared";
import type { BackupStore } from "../backups/store.js";
import type { VerifyStore } from "../verify/store.js";
import type { FactFeed } from "./facts.js";
import type { StaleToldStore } from "./stale-told-store.js";

const DAY = 86_400_000;
export const STALE_CHECK_INTERVAL_MS = 3_600_000;

export interface StaleInput {
  /** The stack's verified marker: the newest point that passed, and when. */
  marker: { pointId: string; at: number } | undefined;
  /** When the guest's first existing point was made; undefined when it has none. */
  firstPointAt: number | undefined;
  /** The episode already told for the stack, if any. */
  toldEpisode: number | undefined;
  now: number;
  staleAfterMs: number;
}

/**
 * `fresh`: verified within the age, or nothing to verify yet (no point): an episode told is over.
 * `stale`: `since` is where the age counts from; `episode` names the episode (the marker's time,
 * 0 when never verified, so removing the first point does not start a new one); `tell` when that
 * episode was not told yet.
 */
export type StaleVerdict = { state: "fresh" } | { state: "stale"; since: number; episode: number; tell: boolean };

export function staleVerdict(i: StaleInput): StaleVerdict {
  const since = i.marker?.at ?? i.firstPointAt;
  if (since === undefined || i.now - since <= i.staleAfterMs) return { state: "fresh" };
  const episode = i.marker?.at ?? 0;
  return { state: "stale", since, episode, tell: i.toldEpisode !== episode };
}

export interface StaleWatchDeps {
  /** The checked stacks (`verify.checks`), each once. */
  checks: ReadonlyArray<{ guest: string; stack: string }>;
  staleAfterDays: number;
  verify: VerifyStore;
  backups: BackupStore;
  told: StaleToldStore;
  feed: FactFeed;
  clock: Clock;
  log: Logger;
}

export class StaleVerificationWatch {
  private timer: NodeJS.Timeout | undefined;
  private readonly stacks: Array<{ guest: string; stack: string }>;

  constructor(private readonly d: StaleWatchDeps) {
    const seen = new Set<string>();
    this.stacks = d.checks.filter((c) => !seen.has(`${c.guest}/${c.stack}`) && seen.add(`${c.guest}/${c.stack}`)).map((c) => ({ guest: c.guest, stack: c.stack }));
  }

  /** One look at every checked stack; returns the stacks told stale now. */
  check(): string[] {
    const { d } = this;
    const now = d.clock.now();
    const staleAfterMs = d.staleAfterDays * DAY;
    const told: string[] = [];
    for (const { guest, stack } of this.stacks) {
      const m = d.verify.markers(guest).find((x) => x.stack === stack);
      const marker = m && { pointId: m.verifiedBackupId, at: m.verifiedAt };
      const toldEpisode = d.told.toldEpisode(guest, stack);
      const v = staleVerdict({ marker, firstPointAt: d.backups.firstCreatedAt(guest), toldEpisode, now, staleAfterMs });
      if (v.state === "fresh") {
        if (toldEpisode !== undefined) d.told.clear(guest, stack);
        continue;
      }
      if (!v.tell) continue;
      // Durable before it is told: a crash here loses one notification, a restart never repeats one.
      d.told.told(guest, stack, v.episode, now);
      d.log.warn({ guestId: guest, stack, since: new Date(v.since).toISOString(), staleAfterDays: d.staleAfterDays }, "verification stale");
      d.feed.publish({ kind: "verification-stale", guestId: guest, stack, lastVerified: marker, since: v.since, staleAfterMs, at: now });
      told.push(`${guest}/${stack}`);
    }
    return told;
  }

  /** check() now and every `intervalMs` (the timer does not hold the process). */
  start(intervalMs = STALE_CHECK_INTERVAL_MS): void {
    this.safeCheck();
    this.timer = setInterval(() => this.safeCheck(), intervalMs);
    this.timer.unref();
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  private safeCheck(): void {
    try {
      this.check();
    } catch (err) {
      this.d.log.error({ err }, "stale verification check failed");
    }
  }
}
