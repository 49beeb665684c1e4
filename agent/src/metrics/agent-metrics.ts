// The agent's Prometheus metrics, on a registry of its own (never prom-client's global one).
// Every value comes from a committed job as the ledger stored it (through the fact feed); a metric
// whose source does not exist yet is not defined here at all, so nothing made up is ever exposed.
// Verification, schedules and the cluster lease are read from their stores at each scrape
// (attachSources(): the verified markers and runs, the tick records, the engine's lease state), so
// a scrape shows what is durable, also what happened before this process started.
import { Consistency, Phase } from "@lull/proto";
import { phaseName } from "@lull/shared";
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import type { Fact } from "../observe/facts.js";
import type { JobRecord } from "../jobs/job.js";
import type { ScheduleStatus } from "../schedules/engine.js";
import type { VerifyRecord } from "../verify/machine.js";
import type { StackMarker } from "../verify/store.js";

/** What the scrape-time metrics read (each optional: a part that is not running exposes nothing). */
export interface MetricSources {
  guests: readonly string[];
  /** The verified marker of each stack of a guest. */
  markers?: (guestId: string) => StackMarker[];
  /** The guest's newest verification runs, newest first. */
  verifications?: (guestId: string) => VerifyRecord[];
  /** The schedules' status (undefined before the schedule engine started). */
  schedules?: () => ScheduleStatus[] | undefined;
  /** The guests a backup schedule backs up (its guests, its group's members, or all). */
  scheduledGuests?: (scheduleId: string) => readonly string[];
  /** Stack leases that controllers' event streams hold now (the agent renews them). */
  leasesHeldByStreams?: () => number;
}

/** Seconds buckets with millisecond resolution at the low end: 10 ms … 30 min. */
const DOWNTIME_BUCKETS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800];
/** Seconds buckets of an event's way from its time to the bus: 1 ms … 10 s. */
const PUBLISH_BUCKETS = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10];
const PHASE_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 1800, 3600, 7200, 14400];

export interface AgentMetricsOptions {
  /** Labels on every series (`node`). */
  node: string;
  /** Also expose the Node.js process metrics (`process_*`, `nodejs_*`); on in the daemon. */
  processMetrics?: boolean;
}

export class AgentMetrics {
  readonly registry = new Registry();
  private readonly jobs: Counter<"guest" | "outcome" | "code">;
  private readonly lastSuccess: Gauge<"guest" | "stack">;
  private readonly downtime: Histogram<"guest" | "stack" | "resumed">;
  private readonly phaseDuration: Histogram<"guest" | "phase">;
  private readonly barrierWait: Histogram<"guest">;
  private readonly archiveSize: Gauge<"guest">;
  private readonly archivedBytes: Counter<"guest">;
  private readonly throughput: Gauge<"guest">;
  private readonly crashConsistent: Counter<"guest">;
  private readonly publishDelay: Histogram;
  private readonly handoffDelay: Histogram;
  private readonly lastSuccessAt = new Map<string, number>();

  constructor(options: AgentMetricsOptions) {
    this.registry.setDefaultLabels({ node: options.node });
    if (options.processMetrics) collectDefaultMetrics({ register: this.registry });
    const registers = [this.registry];
    this.jobs = new Counter({
      name: "lull_backup_jobs_total",
      help: "Backup jobs that ended, by outcome (done, failed, cancelled) and stable error code (none when done).",
      labelNames: ["guest", "outcome", "code"],
      registers,
    });
    this.lastSuccess = new Gauge({
      name: "lull_backup_last_success_timestamp_seconds",
      help: "When the newest backup that ended done finished, per guest and stack (stack empty for a guest without registered stacks).",
      labelNames: ["guest", "stack"],
      registers,
    });
    this.downtime = new Histogram({
      name: "lull_backup_stack_downtime_seconds",
      help: "How long a stack was down during a backup (stop begun to verified up, millisecond resolution), by when it resumed (early at snapshotted, or at the end).",
      labelNames: ["guest", "stack", "resumed"],
      buckets: DOWNTIME_BUCKETS,
      registers,
    });
    this.phaseDuration = new Histogram({
      name: "lull_backup_phase_duration_seconds",
      help: "Time a backup job spent in each phase (quiesce, snapshot, archive) and in total.",
      labelNames: ["guest", "phase"],
      buckets: PHASE_BUCKETS,
      registers,
    });
    this.barrierWait = new Histogram({
      name: "lull_backup_barrier_wait_seconds",
      help: "Time from asking the stacks to quiesce until the barrier passed or ended (jobs with registered stacks only).",
      labelNames: ["guest"],
      buckets: DOWNTIME_BUCKETS,
      registers,
    });
    this.archiveSize = new Gauge({
      name: "lull_backup_archive_size_bytes",
      help: "Size of the newest archive written, per guest.",
      labelNames: ["guest"],
      registers,
    });
    this.archivedBytes = new Counter({
      name: "lull_backup_archived_bytes_total",
      help: "Bytes read into archives by backups that ended done.",
      labelNames: ["guest"],
      registers,
    });
    this.throughput = new Gauge({
      name: "lull_backup_archive_throughput_bytes_per_second",
      help: "Bytes read per second of archiving, of the newest backup that ended done.",
      labelNames: ["guest"],
      registers,
    });
    this.crashConsistent = new Counter({
      name: "lull_backup_crash_consistent_total",
      help: "Backups that went on without every stack quiesced (consistency CRASH).",
      labelNames: ["guest"],
      registers,
    });
    this.publishDelay = new Histogram({
      name: "lull_event_publish_delay_seconds",
      help: "Time from an event's own time (its `at`) until it was published to the watch streams: the commit that wrote it, its fsync and any wait for the event loop.",
      buckets: PUBLISH_BUCKETS,
      registers,
    });
    this.handoffDelay = new Histogram({
      name: "lull_event_handoff_delay_seconds",
      help: "Per delivery of a live event: time from its `at` until the agent handed it to one watcher's stream (gRPC, http2 and the transport take it from there).",
      buckets: PUBLISH_BUCKETS,
      registers,
    });
  }

  /** Live events were handed to one watcher's stream `now`: per delivery, the time since each event's `at`. */
  eventsHandedOff(events: readonly { at?: Date | undefined }[], now: number): void {
    for (const e of events) this.handoffDelay.observe(Math.max(0, now - (e.at?.getTime() ?? now)) / 1000);
  }

  /** An event reached the bus `delayMs` after its `at`. */
  eventPublished(delayMs: number): void {
    this.publishDelay.observe(Math.max(0, delayMs) / 1000);
  }

  /** Registers the metrics read from the stores at each scrape (once). */
  attachSources(src: MetricSources): void {
    const registers = [this.registry];
    const held = src.leasesHeldByStreams;
    if (held) {
      new Gauge({
        name: "lull_stack_leases_held_by_streams",
        help: "Stack leases that controllers' event streams hold (hold_lease), which the agent renews; the other registered stacks renew theirs by RegisterStack.",
        registers,
        collect() {
          this.set(held());
        },
      });
    }
    const markers = src.markers;
    if (markers) {
      new Gauge({
        name: "lull_verify_last_success_timestamp_seconds",
        help: "When the newest restore point that passed app-level verification was verified, per guest and stack.",
        labelNames: ["guest", "stack"],
        registers,
        collect() {
          this.reset();
          for (const guest of src.guests) for (const m of markers(guest)) this.set({ guest, stack: m.stack }, m.verifiedAt / 1000);
        },
      });
    }
    const verifications = src.verifications;
    if (verifications) {
      new Gauge({
        name: "lull_verify_last_run_timestamp_seconds",
        help: "When the newest verification that ended, ended, per guest, by its result (passed, failed, cancelled).",
        labelNames: ["guest", "result"],
        registers,
        collect() {
          this.reset();
          for (const guest of src.guests) {
            const seen = new Set<string>();
            for (const v of verifications(guest)) {
              if (v.endedAt === undefined || seen.has(v.phase)) continue;
              if (v.phase !== "passed" && v.phase !== "failed" && v.phase !== "cancelled") continue;
              seen.add(v.phase);
              this.set({ guest, result: v.phase }, v.endedAt / 1000);
            }
          }
        },
      });
    }
    const schedules = src.schedules;
    if (schedules) {
      new Gauge({
        name: "lull_schedule_interval_seconds",
        help: "The expected time between two ticks of a schedule (its calendar event's next two occurrences).",
        labelNames: ["schedule", "action", "scope"],
        registers,
        collect() {
          this.reset();
          for (const s of schedules() ?? []) if (s.intervalMs !== undefined) this.set({ schedule: s.id, action: s.action, scope: s.scope }, s.intervalMs / 1000);
        },
      });
      const scheduledGuests = src.scheduledGuests;
      if (scheduledGuests) {
        new Gauge({
          name: "lull_backup_expected_interval_seconds",
          help: "The shortest interval of the backup schedules that back a guest up (what an alert holds its last success against).",
          labelNames: ["guest"],
          registers,
          collect() {
            this.reset();
            const shortest = new Map<string, number>();
            for (const s of schedules() ?? []) {
              if (s.action !== "backup" || s.intervalMs === undefined) continue;
              for (const guest of scheduledGuests(s.id)) shortest.set(guest, Math.min(s.intervalMs, shortest.get(guest) ?? Infinity));
            }
            for (const [guest, ms] of shortest) this.set({ guest }, ms / 1000);
          },
        });
      }
      new Gauge({
        name: "lull_schedule_last_run_timestamp_seconds",
        help: "When the newest tick that ran started (running or ended), per schedule.",
        labelNames: ["schedule"],
        registers,
        collect() {
          this.reset();
          for (const s of schedules() ?? []) {
            const at = s.lastRun?.startedAt ?? s.lastRun?.recordedAt;
            if (at !== undefined) this.set({ schedule: s.id }, at / 1000);
          }
        },
      });
      new Gauge({
        name: "lull_schedule_ticks",
        help: "Recorded ticks of a schedule by outcome (done, failed, running, missed, skipped); missed and skipped ones carry their reason in `lullctl schedules`.",
        labelNames: ["schedule", "outcome"],
        registers,
        collect() {
          this.reset();
          for (const s of schedules() ?? []) {
            for (const outcome of ["done", "failed", "running", "missed", "skipped"] as const) this.set({ schedule: s.id, outcome }, s.ticks[outcome] ?? 0);
          }
        },
      });
      new Gauge({
        name: "lull_lease_held",
        help: "1 while this node holds a cluster-wide schedule's pmxcfs lease (a run under it is going), else 0.",
        labelNames: ["schedule"],
        registers,
        collect() {
          this.reset();
          for (const s of schedules() ?? []) if (s.scope === "cluster") this.set({ schedule: s.id }, s.leaseHeld ? 1 : 0);
        },
      });
      new Counter({
        name: "lull_lease_events_total",
        help: "Since the agent started, per cluster-wide schedule: leases acquired, refused (held by another node, no quorum) and lost while held.",
        labelNames: ["schedule", "event"],
        registers,
        collect() {
          this.reset();
          for (const s of schedules() ?? []) {
            if (s.scope !== "cluster") continue;
            for (const event of ["acquired", "refused", "lost"] as const) this.inc({ schedule: s.id, event }, s.lease[event]);
          }
        },
      });
    }
  }

  /** Feeds a fact from the fact feed. */
  observe(fact: Fact): void {
    if (fact.kind === "job-ended") this.jobEnded(fact.job);
    else if (fact.kind === "stack-resumed") {
      this.downtime.observe({ guest: fact.job.guestId, stack: fact.stack, resumed: fact.early ? "early" : "end" }, fact.downtimeMs / 1000);
    }
  }

  /** Sets the last-success gauges from a done job (also used to seed them from the store at start). */
  lastDone(job: JobRecord): void {
    const at = (job.finishedAt ?? job.updatedAt ?? new Date()).getTime() / 1000;
    const stacks = job.stacks.length > 0 ? job.stacks.map((s) => s.stack) : [""];
    for (const stack of stacks) {
      const labels = { guest: job.guestId, stack };
      // A seed (or a late event) never moves the gauge backwards.
      const key = `${job.guestId}\u0000${stack}`;
      const newest = Math.max(at, this.lastSuccessAt.get(key) ?? 0);
      this.lastSuccessAt.set(key, newest);
      this.lastSuccess.set(labels, newest);
    }
  }

  private jobEnded(job: JobRecord): void {
    const outcome = phaseName(job.phase);
    const guest = job.guestId;
    this.jobs.inc({ guest, outcome, code: job.phase === Phase.PHASE_DONE ? "none" : job.errorCode || "unknown" });
    if (job.consistency === Consistency.CONSISTENCY_CRASH) this.crashConsistent.inc({ guest });
    const seconds = (ms: number) => ms / 1000;
    const phases: Array<[string, number]> = [
      ["quiesce", job.quiesceMs],
      ["snapshot", job.snapshotMs],
      ["archive", job.archiveMs],
      ["total", job.totalMs],
    ];
    for (const [phase, ms] of phases) if (ms > 0 || phase === "total") this.phaseDuration.observe({ guest, phase }, seconds(ms));
    if (job.stacks.length > 0 && job.quiesceMs > 0) this.barrierWait.observe({ guest }, seconds(job.quiesceMs));
    if (job.phase !== Phase.PHASE_DONE) return;
    this.lastDone(job);
    if (job.archiveBytes > 0) this.archiveSize.set({ guest }, job.archiveBytes);
    const read = job.bytesDone || job.bytesTotal;
    if (read > 0) this.archivedBytes.inc({ guest }, read);
    if (read > 0 && job.archiveMs > 0) this.throughput.set({ guest }, read / seconds(job.archiveMs));
  }
}
