// The controller's Prometheus metrics, on a registry of its own: resumes by cause (counted as they
// happen), and, read at each scrape, the age of the crash-safe marker on disk (no sample while
// there is none) and whether the agent accepted the last lease renewal.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import type { Clock } from "@lull/shared";
import type { ResumeCause } from "./decide.js";
import type { MarkerStore } from "./marker-store.js";

export interface ControllerMetricsDeps {
  guestId: string;
  stack: string;
  markers: MarkerStore;
  reachable: () => boolean;
  clock: Clock;
  processMetrics?: boolean;
}

export class ControllerMetrics {
  readonly registry = new Registry();
  private readonly resumes: Counter<"cause">;
  private readonly downtime: Histogram<"cause">;

  constructor(deps: ControllerMetricsDeps) {
    this.registry.setDefaultLabels({ guest: deps.guestId, stack: deps.stack });
    if (deps.processMetrics) collectDefaultMetrics({ register: this.registry });
    const registers = [this.registry];
    this.resumes = new Counter({
      name: "lull_controller_resumes_total",
      help: "Times this controller started its stack again, by cause: snapshotted (early), terminal (the job ended), deadline, restarted (found down at start), corrupt-marker, unknown-job, released, stop-failed, pre-failed, shutdown.",
      labelNames: ["cause"],
      registers,
    });
    this.downtime = new Histogram({
      name: "lull_controller_downtime_seconds",
      help: "Downtime of the stack as this controller measured it (stop begun to verified up), by resume cause.",
      labelNames: ["cause"],
      buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800],
      registers,
    });
    new Gauge({
      name: "lull_controller_marker_age_seconds",
      help: "Seconds since the stop the crash-safe marker on disk records (the stack is held down for the backup job_id); no sample while there is no marker.",
      // Labelled so that no marker means no sample at all (an unlabelled gauge always shows a value).
      labelNames: ["job_id"],
      registers,
      collect() {
        this.reset();
        const read = deps.markers.read();
        if (read.kind === "present") this.set({ job_id: read.marker.jobId }, Math.max(0, (deps.clock.now() - read.marker.stoppedAt) / 1000));
      },
    });
    new Gauge({
      name: "lull_controller_marker_present",
      help: "1 while a marker is on disk (the stack is held down for a backup), 0 otherwise; a corrupt marker counts as present.",
      registers,
      collect() {
        this.set(deps.markers.read().kind === "none" ? 0 : 1);
      },
    });
    new Gauge({
      name: "lull_controller_agent_reachable",
      help: "1 when the agent accepted the last registration or lease renewal of this stack, 0 otherwise.",
      registers,
      collect() {
        this.set(deps.reachable() ? 1 : 0);
      },
    });
  }

  resumed(cause: ResumeCause, downtimeMs: number | null): void {
    this.resumes.inc({ cause });
    if (downtimeMs !== null) this.downtime.observe({ cause }, downtimeMs / 1000);
  }
}
