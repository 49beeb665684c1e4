// Schedules' facts. A tick's NOTE event (job id `schedule:<id>`, published after its commit) only
// says "look again": the schedule's ticks are read back from the tick store. Every record made in
// the same turn of the event loop is one batch — after a downtime the engine records every missed
// tick at once — told as ONE `schedule-not-run` fact per schedule with all its ticks; a run that
// ended failed is a `schedule-run-failed` fact, except:
//   - backup schedules: their failed jobs are told as `job-ended` (backup-failed) already;
//   - a run ended because the agent was stopping (LULL_E_SHUTTING_DOWN): not a failure of the run.
// Only records made after the feed started are told; a tick already recorded is never told again.
import { EventKind, type Event } from "@lull/proto";
import type { Clock } from "@lull/shared";
import type { AgentConfig } from "../config.js";
import type { BackupStore } from "../backups/store.js";
import type { EventBus } from "../events/bus.js";
import { guestsOf } from "../schedules/actions.js";
import { scheduleJobId, type ScheduleTickStore, type TickRecord } from "../schedules/store.js";
import type { FactFeed, ScheduleRef } from "./facts.js";

export interface ScheduleFactDeps {
  config: Readonly<AgentConfig>;
  bus: EventBus;
  ticks: ScheduleTickStore;
  backups: BackupStore;
  feed: FactFeed;
  clock: Clock;
}

const PREFIX = scheduleJobId("");

/** When a record was made: a failed run when it ended, a missed or skipped tick when recorded. */
const recordedAt = (t: TickRecord) => (t.outcome === "failed" ? (t.endedAt ?? t.recordedAt) : t.recordedAt);

/** The guests and stacks a schedule covers, as a notification's matchers see them. */
export function scheduleRef(config: Readonly<AgentConfig>, backups: BackupStore, id: string): ScheduleRef | undefined {
  const s = config.schedules.list.find((x) => x.id === id);
  if (!s) return undefined;
  const guests = guestsOf(config, s);
  const stacks =
    s.action === "verify"
      ? config.verify.checks.filter((c) => guests.includes(c.guest)).map((c) => c.stack)
      : guests.flatMap((g) => backups.list({ guestId: g, limit: 1 })[0]?.stacks.map((x) => x.stack) ?? []);
  return { id: s.id, action: s.action, guests, stacks: [...new Set(stacks)] };
}

/** Returns the stop function (unsubscribes, drops a pending batch). */
export function feedScheduleFacts(d: ScheduleFactDeps): () => void {
  // Per schedule: the newest record time told and the ticks told at exactly that time.
  const cursors = new Map<string, { at: number; keys: Set<string> }>();
  const startedAt = d.clock.now();
  const pending = new Set<string>();
  let flushing: NodeJS.Immediate | undefined;

  const flush = () => {
    flushing = undefined;
    const ids = [...pending];
    pending.clear();
    for (const id of ids) {
      const cursor = cursors.get(id) ?? { at: startedAt, keys: new Set<string>() };
      const key = (t: TickRecord) => `${t.tickAt}/${t.outcome}`;
      const fresh = d.ticks.changedSince(id, cursor.at).filter((t) => !(recordedAt(t) === cursor.at && cursor.keys.has(key(t))));
      if (fresh.length === 0) continue;
      const at = Math.max(cursor.at, ...fresh.map(recordedAt));
      const keys = at === cursor.at ? cursor.keys : new Set<string>();
      for (const t of fresh) if (recordedAt(t) === at) keys.add(key(t));
      cursors.set(id, { at, keys });
      const schedule = scheduleRef(d.config, d.backups, id);
      if (!schedule) continue;
      const notRun = fresh.filter((t) => t.outcome === "missed" || t.outcome === "skipped");
      if (notRun.length > 0) d.feed.publish({ kind: "schedule-not-run", schedule, ticks: notRun, at: Math.max(...notRun.map(recordedAt)) });
      if (schedule.action === "backup") continue;
      for (const tick of fresh) {
        if (tick.outcome === "failed" && tick.errorCode !== "LULL_E_SHUTTING_DOWN") d.feed.publish({ kind: "schedule-run-failed", schedule, tick });
      }
    }
  };

  const unsubscribe = d.bus.subscribe({}, (event: Event) => {
    if (event.kind !== EventKind.EVENT_KIND_NOTE || !event.jobId.startsWith(PREFIX)) return;
    pending.add(event.jobId.slice(PREFIX.length));
    flushing ??= setImmediate(flush);
  });
  return () => {
    unsubscribe();
    if (flushing) clearImmediate(flushing);
    flushing = undefined;
    pending.clear();
  };
}
