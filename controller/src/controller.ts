// One controller: recover, register the stack and keep its lease, watch the agent, reconcile until
// the signal aborts; then make sure the stack runs, unregister, close.
import { EventKind } from "@lull/proto";
import { asLullError, listenMetrics, systemClock, type AgentApi as AgentCalls, type Clock, type Logger, type MetricsListener } from "@lull/shared";
import { AgentLink, createAgentLinkClient } from "./agent-link.js";
import type { ControllerConfig, Failpoint } from "./config.js";
import { ControllerLoop } from "./loop.js";
import { createFileMarkerStore, type MarkerStore } from "./marker-store.js";
import { ControllerMetrics } from "./metrics.js";
import { FileResumeTimings } from "./resume-timing.js";
import { Quiescer } from "./quiesce/quiescer.js";
import { Reconciler } from "./reconcile.js";
import { recover } from "./recover.js";
import { createStackDriver, type StackDriver } from "./stacks/index.js";

export interface ControllerParts {
  config: Readonly<ControllerConfig>;
  log: Logger;
  clock?: Clock;
  driver?: StackDriver;
  markers?: MarkerStore;
  /** The agent's client; default the one `config.agent` describes. */
  client?: AgentCalls;
  /**
   * What a failpoint does: block for good (main.ts freezes the whole process). It calls `announce`
   * (which logs "paused at failpoint") once the freeze is in place, so whoever reads that line may
   * treat the process as crashed — main.ts drops its signal handlers first, so a SIGTERM sent on
   * that line kills the process instead of waiting in a handler the frozen loop never runs.
   */
  freeze?: (announce: () => void) => Promise<void>;
}

export class Controller {
  readonly markers: MarkerStore;
  readonly link: AgentLink;
  readonly loop: ControllerLoop;
  readonly reconciler: Reconciler;
  /** The Prometheus metrics (always counted; served only when `metrics.address` is set). */
  readonly metrics: ControllerMetrics;
  /** `host:port` of the metrics listener while it runs. */
  metricsAddress: string | undefined;
  private metricsListener: MetricsListener | undefined;
  private readonly config: Readonly<ControllerConfig>;
  private readonly log: Logger;
  private readonly client: AgentCalls;
  private readonly driver: StackDriver;

  constructor(parts: ControllerParts) {
    const { config, log } = parts;
    const clock = parts.clock ?? systemClock;
    this.config = config;
    this.log = log;
    this.client = parts.client ?? createAgentLinkClient(config.agent, log);
    this.markers = parts.markers ?? createFileMarkerStore(config.markerDir, config.stack);
    const driver = parts.driver ?? createStackDriver(config.driver);
    this.driver = driver;
    const freeze =
      parts.freeze ??
      ((announce: () => void) => {
        announce();
        return new Promise<void>(() => undefined);
      });
    const failpoint = async (name: Failpoint): Promise<void> => {
      if (config.failpoint !== name) return;
      await freeze(() => log.warn({ failpoint: name }, "paused at failpoint"));
    };
    this.link = new AgentLink({
      api: this.client,
      guestId: config.guestId,
      stack: config.stack,
      controllerId: config.controllerId,
      leaseTtlMs: config.leaseTtlMs,
      pollIntervalMs: config.pollIntervalMs,
      clock,
      log,
    });
    this.metrics = new ControllerMetrics({
      guestId: config.guestId,
      stack: config.stack,
      markers: this.markers,
      reachable: () => this.link.reachable,
      clock,
      processMetrics: config.metrics.address !== undefined,
    });
    this.loop = new ControllerLoop({ clock, log, pollIntervalMs: config.pollIntervalMs });
    const quiescer = new Quiescer({ config: config.quiesce, driver, stack: config.stack, clock, log });
    this.reconciler = new Reconciler({
      guestId: config.guestId,
      stack: config.stack,
      controllerId: config.controllerId,
      agentAddress: config.agent.address,
      resume: config.resume,
      resumeDeadlineMs: config.resumeDeadlineMs,
      resumeLeadMs: config.resumeLeadMs,
      agent: this.link,
      driver,
      quiescer,
      markers: this.markers,
      clock,
      log,
      failpoint,
      onMarker: (marker) => this.loop.onMarker(marker),
      onResumed: (cause, downtimeMs) => this.metrics.resumed(cause, downtimeMs),
      timings: new FileResumeTimings(config.markerDir, config.stack, (err) => log.warn({ err: err.message }, "recording the resume's duration failed")),
    });
    this.loop.bind(this.reconciler);
  }

  /** Runs until `signal` aborts, then shuts down (the stack runs again, the stack is unregistered). */
  async run(signal: AbortSignal): Promise<void> {
    const c = this.config;
    this.log.info(
      { guestId: c.guestId, stack: c.stack, controllerId: c.controllerId, agent: c.agent.address, driver: c.driver.type, strategy: c.quiesce.strategy, preSteps: c.quiesce.pre.length, postSteps: c.quiesce.post.length, resume: c.resume, resumeDeadlineMs: c.resumeDeadlineMs },
      "controller starting",
    );
    if (c.metrics.address !== undefined) {
      this.metricsListener = await listenMetrics({ address: c.metrics.address, registry: this.metrics.registry, log: this.log });
      this.metricsAddress = this.metricsListener.address;
    }
    // Beside the recovery, never before it: a marker's deadline does not wait for a slow status.
    const preflight = this.preflight(signal);
    try {
      await recover({ reconciler: this.reconciler, markers: this.markers, log: this.log }, signal);
    } catch (err) {
      if (!signal.aborted) this.log.warn({ err: asLullError(err).message }, "recovery pass failed — the loop will look again");
    }
    const lease = this.link.keepLease(signal, (res) => {
      if (res.activeJob) this.loop.request({ jobId: res.activeJob.id });
    });
    const watch = this.link.watch(
      {
        // Progress events change nothing this controller acts on; every other event means "look again".
        onEvent: (event) => {
          if (event.kind !== EventKind.EVENT_KIND_PROGRESS) this.loop.request({ jobId: event.jobId });
        },
        onStreamState: (healthy) => this.loop.setStreamHealthy(healthy),
      },
      signal,
    );
    this.loop.request({ poll: true });
    await this.loop.run(signal);
    await Promise.allSettled([lease, watch, preflight]);
    await this.shutdown();
  }

  /** The driver's configured commands, checked once at start: each problem logged as an error naming its key. */
  private async preflight(signal: AbortSignal): Promise<void> {
    const check = this.driver.preflight;
    if (check === undefined) return;
    try {
      const problems = await check(signal);
      for (const problem of problems) {
        this.log.error({ driver: this.config.driver.type, problem }, "a configured stack command cannot run — quiesces are refused until it can");
      }
      if (problems.length === 0) this.log.info({ driver: this.config.driver.type }, "stack commands checked");
    } catch (err) {
      if (!signal.aborted) this.log.warn({ err: asLullError(err).message }, "checking the stack commands failed");
    }
  }

  private async shutdown(): Promise<void> {
    this.log.info({}, "controller stopping");
    await this.reconciler.resumeForShutdown();
    this.loop.dispose();
    try {
      await this.link.unregister();
      this.log.info({ stack: this.config.stack }, "stack unregistered");
    } catch (err) {
      this.log.warn({ err: asLullError(err).message }, "unregistering the stack failed");
    }
    this.client.close();
    await this.metricsListener?.close();
    this.log.info({}, "controller stopped");
  }
}
