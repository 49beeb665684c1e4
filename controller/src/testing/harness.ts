// One controller wired to the real agent (a cued engine, the client's faults injectable) and a
// real process stack, in a temp dir: the component tests' set-up and tear-down in one place.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { z } from "@lull/shared";
import { controllerConfigSchema, type ControllerConfig } from "../config.js";
import { Controller } from "../controller.js";
import { createFileMarkerStore, type Marker, type MarkerStore } from "../marker-store.js";
import type { quiesceSchema } from "../quiesce/schema.js";
import { waitUntil } from "@lull/agent/testing";
import { ControllerTestAgent } from "./agent.js";
import { LogCapture } from "./log-capture.js";
import { ProcessStack } from "./process-stack.js";

export interface HarnessOptions {
  resume?: "early" | "end";
  resumeDeadlineMs?: number;
  resumeLeadMs?: number;
  pollIntervalMs?: number;
  leaseTtlMs?: number;
  callTimeoutMs?: number;
  /** Default true: the app runs before the controller starts. */
  stackRunning?: boolean;
  driver?: { timeoutMs?: number; verifyTimeoutMs?: number; start?: string[] };
  /** Another driver's config instead of the process stack's `command` driver. */
  driverConfig?: Record<string, unknown>;
  /** The config's `quiesce` section (default: strategy stop, no steps). */
  quiesce?: z.input<typeof quiesceSchema>;
  /** The config's `metrics` section (default: no listener). */
  metrics?: { address?: string };
}

export class Harness {
  readonly logs = new LogCapture();
  readonly abort = new AbortController();
  controller!: Controller;
  config!: Readonly<ControllerConfig>;
  private running: Promise<void> | undefined;

  private constructor(
    readonly agent: ControllerTestAgent,
    readonly stack: ProcessStack,
    readonly markerDir: string,
    readonly markers: MarkerStore,
  ) {}

  static async create(options: HarnessOptions = {}): Promise<Harness> {
    const agent = await ControllerTestAgent.start();
    const markerDir = mkdtempSync(join(tmpdir(), "lull-marker-"));
    const markers = createFileMarkerStore(markerDir, "app");
    const stack = ProcessStack.create(markers.path);
    const h = new Harness(agent, stack, markerDir, markers);
    if (options.stackRunning ?? true) stack.startNow();
    stack.clearEvents();
    h.config = controllerConfigSchema.parse({
      guestId: "demo",
      stack: "app",
      controllerId: "test-controller",
      agent: { address: agent.address, callTimeoutMs: options.callTimeoutMs ?? 1_000 },
      markerDir,
      resumeDeadlineMs: options.resumeDeadlineMs ?? 20_000,
      resumeLeadMs: options.resumeLeadMs,
      pollIntervalMs: options.pollIntervalMs ?? 100,
      leaseTtlMs: options.leaseTtlMs ?? 3_000,
      resume: options.resume ?? "early",
      driver: options.driverConfig ?? stack.driverConfig(options.driver),
      quiesce: options.quiesce,
      metrics: options.metrics,
      logLevel: "debug",
    });
    h.controller = new Controller({ config: h.config, log: h.logs.log, client: agent.client(h.config.agent.callTimeoutMs) });
    return h;
  }

  /** A marker left on disk by a previous (crashed) run: stopped `stoppedAgoMs` ago, deadline in `deadlineInMs`. */
  seedMarker(jobId: string, times: { stoppedAgoMs?: number; deadlineInMs: number }): Marker {
    const now = Date.now();
    const marker: Marker = {
      jobId,
      guestId: "demo",
      stack: "app",
      agent: this.agent.address,
      controllerId: "crashed-controller",
      stoppedAt: now - (times.stoppedAgoMs ?? 500),
      resumeDeadline: now + times.deadlineInMs,
      resumeAt: now + times.deadlineInMs,
    };
    this.markers.write(marker);
    return marker;
  }

  start(): void {
    this.running = this.controller.run(this.abort.signal);
  }

  /** Starts the controller and waits until the agent has granted its stack a lease. */
  async startRegistered(): Promise<void> {
    this.start();
    await waitUntil(() => this.agent.faults.callsOf("registerStack").some((c) => c.response !== undefined), 5_000, "the stack to register");
  }

  /** SIGTERM equivalent: aborts and waits for the shutdown to finish. */
  async stop(): Promise<void> {
    this.abort.abort();
    await this.running;
  }

  async cleanup(): Promise<void> {
    if (!this.abort.signal.aborted) await this.stop().catch(() => undefined);
    this.controller.loop.dispose();
    await this.agent.stop();
    this.stack.cleanup();
    rmSync(this.markerDir, { recursive: true, force: true });
  }
}
