// Performs what ./decide.ts decides. Each pass starts from real state: the marker on disk, the job
// read from the agent (GetJob/ListJobs), the stack's status from the driver. An event only says
// "look again". In memory are only the job being tracked to its end and what this process itself
// measured (stop duration); losing them in a crash loses nothing the marker does not also say.
import { Phase, type Job } from "@lull/proto";
import { asLullError, phaseName, type Clock, type Logger } from "@lull/shared";
import type { AgentApi } from "./agent-link.js";
import type { Failpoint } from "./config.js";
import { decideForJob, decideForMarker, isPendingQuiesce, type JobView, type ResumeCause } from "./decide.js";
import type { Marker, MarkerStore } from "./marker-store.js";
import { Quiescer } from "./quiesce/quiescer.js";
import { quiesceSchema } from "./quiesce/schema.js";
import { resumeLeadMs } from "./resume-lead.js";
import type { ResumeTimings } from "./resume-timing.js";
import { ResumeOps, type TrackedJob } from "./resume-ops.js";
import type { StackDriver } from "./stacks/driver.js";

export interface ReconcilerOptions {
  guestId: string;
  stack: string;
  controllerId: string;
  agentAddress: string;
  resume: "early" | "end";
  resumeDeadlineMs: number;
  /** Floor of the resume lead (./resume-lead.ts); undefined: the default. */
  resumeLeadMs?: number | undefined;
  agent: AgentApi;
  driver: StackDriver;
  /** Holds the stack and runs the quiesce steps (default: strategy `stop`, no steps). */
  quiescer?: Quiescer | undefined;
  markers: MarkerStore;
  clock: Clock;
  log: Logger;
  /** Pauses for good when the configured failpoint is `name` (crash tests); a no-op otherwise. */
  failpoint: (name: Failpoint) => Promise<void>;
  /** Told whenever the marker appears or goes, so the deadline timer can be armed or disarmed. */
  onMarker: (marker: Marker | undefined) => void;
  /** Durations of recent resumes, for the resume lead (default: in memory). */
  timings?: ResumeTimings | undefined;
  /** Told after each resume that brought the stack up. */
  onResumed?: ((cause: ResumeCause, downtimeMs: number | null) => void) | undefined;
}

export interface ReconcileRequest {
  /** Jobs named by events since the last pass. */
  hints: readonly string[];
  /** List the guest's active jobs too (start-up, stream broken). */
  poll: boolean;
  /** The deadline timer fired for this job's marker. */
  deadlineFiredFor?: string | undefined;
}

export class Reconciler {
  private readonly o: ReconcilerOptions & { quiescer: Quiescer };
  private readonly ops: ResumeOps;

  constructor(options: ReconcilerOptions) {
    const quiescer =
      options.quiescer ?? new Quiescer({ config: quiesceSchema.parse({}), driver: options.driver, stack: options.stack, clock: options.clock, log: options.log });
    this.o = { ...options, quiescer };
    this.ops = new ResumeOps(this.o);
  }

  /** How long this process took to hold the stack for `jobId` (null: it did not, e.g. after a restart). */
  private stopMsFor(jobId: string): number | null {
    return this.o.quiescer.heldFor(jobId)?.stopMs ?? null;
  }

  /** A marker is held or a job is tracked: the loop keeps looking even without events. */
  get busy(): boolean {
    return this.ops.tracked !== undefined || this.o.markers.read().kind !== "none";
  }

  get tracked(): TrackedJob | undefined {
    return this.ops.tracked;
  }

  async reconcile(req: ReconcileRequest, signal: AbortSignal): Promise<void> {
    const read = this.o.markers.read();
    if (read.kind === "corrupt") {
      this.o.log.warn({ path: this.o.markers.path, reason: read.reason }, "corrupt marker — resuming the stack");
      await this.ops.resumeWithoutJob("corrupt-marker");
      return;
    }
    if (read.kind === "present") {
      this.o.onMarker(read.marker);
      await this.reconcileMarker(read.marker, req, signal);
      if (this.o.markers.read().kind !== "none") return;
    } else {
      this.o.onMarker(undefined);
    }
    await this.reconcileJobs(req, signal);
  }

  /**
   * Reads a job; a failure is a view, never a throw, unless aborted. Only LULL_E_JOB_NOT_FOUND says
   * the agent does not know the job; any other error it answers with (internal, a credential it
   * refuses, a guest it no longer declares) is an `agent-error`, which holds like an unreachable
   * agent: the marker and its deadline stay, the next pass asks again.
   */
  async readJob(jobId: string, signal: AbortSignal): Promise<JobView> {
    try {
      return { kind: "found", job: await this.o.agent.getJob(jobId, signal) };
    } catch (err) {
      if (signal.aborted) throw signal.reason;
      const e = asLullError(err);
      const reason = `${e.code}: ${e.message}`;
      if (e.code === "LULL_E_JOB_NOT_FOUND") return { kind: "not-found", reason };
      if (e.code === "LULL_E_AGENT_UNREACHABLE") return { kind: "unreachable", reason };
      this.o.log.warn({ jobId, code: e.code, err: e.message }, "the agent answered GetJob with an error — holding, will ask again");
      return { kind: "agent-error", reason };
    }
  }

  private async reconcileMarker(marker: Marker, req: ReconcileRequest, signal: AbortSignal): Promise<void> {
    const now = this.o.clock.now();
    const deadlineFired = req.deadlineFiredFor === marker.jobId;
    // Past the resume point the agent is not even asked: resume first.
    const view: JobView =
      deadlineFired || now >= marker.resumeAt
        ? { kind: "unreachable", reason: "not asked: the resume deadline passed" }
        : await this.readJob(marker.jobId, signal);
    const decision = decideForMarker({ marker, view, now, deadlineFired, resume: this.o.resume, stack: this.o.stack });
    const log = this.o.log.child({ jobId: marker.jobId });
    switch (decision.action) {
      case "hold":
        log.debug({ why: decision.why }, "holding the stack stopped");
        return;
      case "stop-and-acknowledge":
        await this.stopAndAcknowledge(marker, view.kind === "found" ? view.job : undefined, signal);
        return;
      case "resume": {
        if (decision.cause === "deadline") {
          const at = { resumeAt: new Date(marker.resumeAt).toISOString(), resumeDeadline: new Date(marker.resumeDeadline).toISOString() };
          log.warn({ ...at, leadMs: marker.resumeDeadline - marker.resumeAt }, "resume deadline near — resuming the stack");
        }
        if (decision.cause === "unknown-job") log.warn({ reason: view.kind === "not-found" ? view.reason : "" }, "the agent does not know the marker's job — resuming the stack");
        await this.ops.resume(marker, decision.cause, decision.early, this.stopMsFor(marker.jobId));
        await this.ops.flushNotice(signal);
        return;
      }
    }
  }

  /**
   * A stack that is already stopped when its quiesce begins (an operator's maintenance, a crashed
   * app) is left as it is: nothing is stopped, no marker, no pre or post steps, and it is not started
   * at the end. The `hooks` strategy never stops the stack, so it always runs its steps.
   */
  private async foundStopped(signal: AbortSignal): Promise<"stopped" | "quiesce" | { unknown: string }> {
    if (this.o.quiescer.strategy === "hooks") return "quiesce";
    // A stop or start that cannot even run would leave the stack down: refuse before stopping anything.
    const missing = this.o.driver.missing?.() ?? [];
    if (missing.length > 0) return { unknown: missing.join("; ") };
    try {
      return (await this.o.driver.status(signal)) === "stopped" ? "stopped" : "quiesce";
    } catch (err) {
      if (signal.aborted) throw signal.reason;
      // An unknown status is neither running nor stopped: stopping a stack whose state cannot be
      // verified (nor its start afterwards) would be a quiesce nobody can vouch for.
      return { unknown: asLullError(err).message };
    }
  }

  private async acknowledgeLeftStopped(jobId: string, signal: AbortSignal): Promise<void> {
    try {
      await this.o.agent.acknowledgeLeftStopped(jobId, signal);
      this.o.log.info({ jobId }, "quiesce acknowledged (left stopped)");
    } catch (err) {
      if (signal.aborted) throw signal.reason;
      // Tracked as left stopped: the next pass acknowledges again while the agent still waits.
      this.o.log.warn({ jobId, err: asLullError(err).message }, "acknowledging the quiesce failed — will look again");
    }
  }

  /** quiescing: marker first, then pre steps, stop/pause, verify, acknowledge. A failure resumes and refuses. */
  private async quiesce(job: Job, signal: AbortSignal): Promise<void> {
    const now = this.o.clock.now();
    this.o.log.info({ jobId: job.id, at: new Date(now).toISOString() }, "quiescing");
    const resumeDeadline = now + this.o.resumeDeadlineMs;
    const leadMs = resumeLeadMs(this.o, this.ops.longestResumeMs);
    const marker: Marker = {
      jobId: job.id,
      guestId: this.o.guestId,
      stack: this.o.stack,
      agent: this.o.agentAddress,
      controllerId: this.o.controllerId,
      stoppedAt: now,
      resumeDeadline,
      resumeAt: resumeDeadline - leadMs,
    };
    try {
      this.o.markers.write(marker);
    } catch (err) {
      const reason = `cannot write the marker ${this.o.markers.path}: ${(err as Error).message}`;
      this.o.log.error({ jobId: job.id, err: reason }, "marker write failed — refusing to stop the stack");
      this.ops.track(job.id, { kind: "refuse", reason });
      await this.ops.flushNotice(signal);
      return;
    }
    this.o.onMarker(marker);
    this.ops.track(job.id);
    await this.o.failpoint("after-marker");
    await this.stopAndAcknowledge(marker, job, signal, true);
  }

  private async stopAndAcknowledge(marker: Marker, job: Job | undefined, signal: AbortSignal, fresh = false): Promise<void> {
    const log = this.o.log.child({ jobId: marker.jobId });
    const quiescer = this.o.quiescer;
    this.ops.track(marker.jobId);
    let stoppedAt = quiescer.heldFor(marker.jobId)?.at;
    try {
      if (stoppedAt === undefined && !fresh) {
        // Re-attaching after a restart: pre steps of the previous process cannot be vouched for (a
        // session ended with it, a command may have half run); never run them twice — refuse.
        if (quiescer.hasPreSteps) {
          const reason = "the controller restarted during the quiesce: its pre steps' effect is unknown (a database session ends with the process)";
          log.warn({ reason }, "re-attached with pre steps — resuming the stack and refusing the quiesce");
          await this.ops.resume(marker, "restarted", false, null, reason);
          await this.ops.flushNotice(signal);
          return;
        }
        // Never stop twice.
        const held = quiescer.heldStatus;
        const status = held === undefined ? undefined : await this.o.driver.status(signal);
        if (status !== undefined && status === held) {
          stoppedAt = marker.stoppedAt;
          log.info({ status }, `re-attached: the stack is already ${status}`);
        }
      }
      if (stoppedAt === undefined) {
        const held = await quiescer.quiesce(marker.jobId, signal);
        stoppedAt = held.at;
        const fields = { stopMs: held.stopMs, preMs: held.preMs, strategy: quiescer.strategy };
        const what = { stop: "stack stopped", pause: "stack paused", hooks: "stack quiesced by hooks" } as const;
        log.info(fields, what[quiescer.strategy]);
        await this.o.failpoint("after-stop");
      }
    } catch (err) {
      // The deferred resume: whatever went wrong while quiescing, the stack runs again and the post steps run.
      const e = asLullError(err);
      const cause = e.code === "LULL_E_STACK_STOP_FAILED" ? "stop-failed" : "pre-failed";
      log.warn({ err: e.message, cause }, "quiescing the stack failed — resuming it and refusing the quiesce");
      await this.ops.resume(marker, cause, false, this.stopMsFor(marker.jobId), e.message);
      await this.ops.flushNotice(signal);
      return;
    }
    if (job !== undefined && !isPendingQuiesce(job, this.o.stack)) return;
    try {
      await this.o.agent.acknowledge(marker.jobId, stoppedAt, signal);
      log.info({ stoppedAt: new Date(stoppedAt).toISOString() }, "quiesce acknowledged");
    } catch (err) {
      if (signal.aborted) throw signal.reason;
      // The marker stays: the next pass re-reads the job and acknowledges again, or resumes.
      log.warn({ err: asLullError(err).message }, "acknowledging the quiesce failed — will look again");
    }
  }

  private async reconcileJobs(req: ReconcileRequest, signal: AbortSignal): Promise<void> {
    const jobs = new Map<string, Job>();
    const tracked = this.ops.tracked;
    if (tracked !== undefined) {
      const view = await this.readJob(tracked.jobId, signal);
      if (view.kind === "unreachable" || view.kind === "agent-error") return;
      if (view.kind === "not-found") {
        this.o.log.warn({ jobId: tracked.jobId, reason: view.reason }, "tracked job vanished from the agent");
        this.ops.untrack();
      } else {
        await this.ops.flushNotice(signal, view.job);
        jobs.set(view.job.id, view.job);
      }
    }
    for (const id of req.hints) {
      if (jobs.has(id)) continue;
      const view = await this.readJob(id, signal);
      if (view.kind === "found") jobs.set(id, view.job);
    }
    if (req.poll) for (const job of await this.o.agent.listActiveJobs(signal)) if (!jobs.has(job.id)) jobs.set(job.id, job);

    const ordered = [...jobs.values()].sort((a, b) => (a.createdAt?.getTime() ?? 0) - (b.createdAt?.getTime() ?? 0));
    for (const job of ordered) {
      const current = this.ops.tracked;
      const action = decideForJob({
        job,
        stack: this.o.stack,
        trackedJobId: current?.jobId,
        trackedResumed: current?.resumed ?? false,
        trackedLeftStopped: current?.leftStopped,
      });
      switch (action.action) {
        case "ignore":
          break;
        case "done":
          this.logDone(job);
          this.ops.untrack();
          break;
        case "track":
          this.ops.track(job.id);
          break;
        case "refuse":
          this.o.log.warn({ jobId: job.id, reason: action.reason }, "refusing the quiesce");
          await this.o.agent.refuse(job.id, action.reason, signal).catch((err: unknown) => {
            if (signal.aborted) throw signal.reason;
            this.o.log.warn({ jobId: job.id, err: asLullError(err).message }, "refusing the quiesce failed");
          });
          break;
        case "acknowledge-left-stopped":
          await this.acknowledgeLeftStopped(job.id, signal);
          break;
        case "quiesce": {
          const found = await this.foundStopped(signal);
          if (found === "stopped") {
            this.o.log.info({ jobId: job.id }, "stack already stopped — left as it is");
            this.ops.trackLeftStopped(job.id);
            await this.acknowledgeLeftStopped(job.id, signal);
            break;
          }
          if (found !== "quiesce") {
            const reason = `the stack is not stopped: ${found.unknown}`;
            this.o.log.error({ jobId: job.id, reason }, "the stack cannot be quiesced safely (unknown status or a command that cannot run) — refusing the quiesce");
            this.ops.track(job.id, { kind: "refuse", reason });
            await this.ops.flushNotice(signal);
            break;
          }
          await this.quiesce(job, signal);
          return; // one job at a time: the marker now owns this pass
        }
      }
    }
  }

  private logDone(job: Job): void {
    const fields = {
      jobId: job.id,
      phase: phaseName(job.phase),
      at: (job.finishedAt ?? new Date(this.o.clock.now())).toISOString(),
      totalMs: job.totalMs,
    };
    if (job.phase === Phase.PHASE_DONE) {
      this.o.log.info(fields, "backup done");
    } else {
      const failure = { failedIn: phaseName(job.failedIn), errorCode: job.errorCode, errorMessage: job.errorMessage };
      this.o.log.warn({ ...fields, ...failure }, "backup done");
    }
  }

  /** Shutdown: if the stack is held stopped, resume it now; then tell the agent what it has not heard. */
  async resumeForShutdown(): Promise<void> {
    const read = this.o.markers.read();
    if (read.kind === "corrupt") await this.ops.resumeWithoutJob("corrupt-marker");
    if (read.kind === "present") await this.ops.resume(read.marker, "shutdown", false, this.stopMsFor(read.marker.jobId));
    await this.ops.flushNotice(AbortSignal.timeout(5_000));
  }
}
