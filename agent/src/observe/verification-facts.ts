// Verification's facts: a run's NOTE event (job id `v-…`, published after its commit) only says
// "look again"; the run is read back from the VerifyStore and told as `verification-ended` once,
// when it has ended (passed, failed, cancelled — an interrupted run ends failed at the next start).
import { EventKind, type Event } from "@lull/proto";
import type { BackupStore } from "../backups/store.js";
import type { EventBus } from "../events/bus.js";
import { ENDED } from "../verify/machine.js";
import type { VerifyStore } from "../verify/store.js";
import type { FactFeed } from "./facts.js";

/** How many ended runs the feed remembers so each is told once. */
const SEEN_LIMIT = 4096;

export interface VerificationFactDeps {
  bus: EventBus;
  store: VerifyStore;
  backups: BackupStore;
  /** The stacks `verify.checks` declares for a guest. */
  checkedStacks: (guestId: string) => string[];
  feed: FactFeed;
}

/** Returns the unsubscribe function. */
export function feedVerificationFacts(d: VerificationFactDeps): () => void {
  const told = new Set<string>();
  return d.bus.subscribe({}, (event: Event) => {
    if (event.kind !== EventKind.EVENT_KIND_NOTE || !event.jobId.startsWith("v-") || told.has(event.jobId)) return;
    const run = d.store.get(event.jobId);
    if (!run || !ENDED.includes(run.phase)) return;
    told.add(run.id);
    if (told.size > SEEN_LIMIT) told.delete(told.values().next().value as string);
    d.feed.publish({ kind: "verification-ended", run, point: d.backups.get(run.pointId), checkedStacks: d.checkedStacks(run.guestId) });
  });
}
