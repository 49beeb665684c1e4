// The operator-facing outputs of a running agent, wired once: the fact feed over the job ledger's,
// the verifier's and the schedules' events (each read back from its store), the stale-verification
// watch (when a stack has a check and a notification target exists: what it told is recorded), the
// Prometheus metrics with their listener (only when `metrics.address` is set) and the notification
// dispatcher (only when a target is configured).
import { Phase } from "@lull/proto";
import { listenMetrics, type Clock, type Logger, type MetricsListener } from "@lull/shared";
import type { AgentConfig } from "../config.js";
import type { EventBus } from "../events/bus.js";
import type { JobStore } from "../jobs/store.js";
import { AgentMetrics } from "../metrics/agent-metrics.js";
import { NotificationDispatcher } from "../notify/dispatcher.js";
import { TokenStore } from "../auth/token-store.js";
import { createStatusPage, type StatusPage } from "../status/handler.js";
import { BackupStore } from "../backups/store.js";
import { ScheduleTickStore } from "../schedules/store.js";
import { VerifyStore } from "../verify/store.js";
import { FactFeed, feedJobFacts } from "./facts.js";
import { feedScheduleFacts } from "./schedule-facts.js";
import { StaleToldStore } from "./stale-told-store.js";
import { StaleVerificationWatch } from "./stale-watch.js";
import { feedVerificationFacts } from "./verification-facts.js";

export interface Outputs {
  feed: FactFeed;
  metrics?: AgentMetrics | undefined;
  /** `host:port` of the metrics listener, when on. */
  metricsAddress?: string | undefined;
  notifier?: NotificationDispatcher | undefined;
  close(graceMs: number): Promise<void>;
}

/** How many of each guest's newest jobs are read at start to seed the last-success gauges. */
const SEED_JOBS = 50;

export async function startOutputs(deps: { config: Readonly<AgentConfig>; bus: EventBus; store: JobStore; log: Logger; clock: Clock }): Promise<Outputs> {
  const { config, log } = deps;
  const feed = new FactFeed(log);
  // Built first: a bad target (an unreadable secret, an unknown template name) fails the start.
  const notifier = config.notifications.targets.length > 0 ? new NotificationDispatcher({ config: config.notifications, node: config.node, log, clock: deps.clock }) : undefined;
  let metrics: AgentMetrics | undefined;
  let listener: MetricsListener | undefined;
  let status: StatusPage | undefined;
  if (config.metrics.address !== undefined) {
    metrics = new AgentMetrics({ node: config.node, processMetrics: true });
    for (const guest of config.guests) {
      const done = deps.store.listJobs({ guestId: guest.id, limit: SEED_JOBS }).find((j) => j.phase === Phase.PHASE_DONE && j.kind !== "restore");
      if (done) metrics.lastDone(done);
    }
    // The status page (agent/src/status/) rides on the same listener, operators only.
    if (config.status.enabled) {
      const guests = config.guests.map((g) => g.id);
      status = createStatusPage({ config: config.status, node: config.node, guests, store: deps.store, bus: deps.bus, tokens: TokenStore.over(deps.store.connection), clock: deps.clock, log });
    }
    listener = await listenMetrics({ address: config.metrics.address, registry: metrics.registry, log, handlers: status ? [status.handle] : [] });
  }
  const database = deps.store.database;
  const backups = new BackupStore(database);
  const verifyStore = new VerifyStore(database);
  const checkedStacks = (guestId: string) => config.verify.checks.filter((c) => c.guest === guestId).map((c) => c.stack);
  const unsubscribers = [
    // First on the bus, so it sees each event before any stream is written to.
    ...(metrics ? [deps.bus.subscribe({}, (e) => metrics.eventPublished(deps.clock.now() - (e.at?.getTime() ?? deps.clock.now())))] : []),
    feedJobFacts(deps.bus, (id) => deps.store.getJob(id), feed),
    feedVerificationFacts({ bus: deps.bus, store: verifyStore, backups, checkedStacks, feed }),
    // Read-only here: the engine's own ScheduleTickStore records the ticks.
    feedScheduleFacts({ config, bus: deps.bus, ticks: new ScheduleTickStore(database, config.node), backups, feed, clock: deps.clock }),
    ...(metrics ? [feed.subscribe((f) => metrics.observe(f))] : []),
    ...(notifier ? [feed.subscribe((f) => notifier.observe(f))] : []),
  ];
  // Subscribed before its first look (at start), so that look is told too.
  const stale =
    notifier && config.verify.checks.length > 0
      ? new StaleVerificationWatch({ checks: config.verify.checks, staleAfterDays: config.verify.staleAfterDays, verify: verifyStore, backups, told: new StaleToldStore(database), feed, clock: deps.clock, log })
      : undefined;
  stale?.start();
  return {
    feed,
    metrics,
    metricsAddress: listener?.address,
    notifier,
    async close(graceMs) {
      stale?.close();
      for (const u of unsubscribers) u();
      await notifier?.close(graceMs);
      status?.close();
      await listener?.close();
    },
  };
}
