// Performs what ./decide.ts decides. Each pass starts from real state: the marker on disk, the job
// read from the agent (GetJob/ListJobs), the stack's status from the driver. An event only says
// "look again". In memory are only the job being tracked to its end and what this process itself
// measured (stop duration); losing them in a crash loses nothing the marker does not also say.
import { Phase, type Job } from "@lull/proto";
import { asLullError, phaseName, type Clock, type Logger } from "@lull/shared";
import type { AgentApi } from "./agent-link.js";
import type { Failpoint } from "./config.js";
import { decideForJob, decideForMarker, isPendingQuiesce, type JobView } from "./decide.js";
import type { Marker, MarkerStore } from "./marker-store.js";
import { ResumeOps, type TrackedJob } from "./resume-ops.js";
import { stopAndVerify, type StackDriver } from "./stacks/driver.js";

export interface ReconcilerOptions {
  guestId: string;
  stack: string;
  controllerId: string;
  agentAddress: string;
  resume: "early" | "end";
  resumeDeadlineMs: number;
  agent: AgentApi;
  driver: StackDriver;
  markers: MarkerStore;
  clock: Clock;
  log: Logger;
  /** Pauses for good when the configured failpoint is `name` (crash tests); a no-op otherwise. */
  failpoint: (name: Failpoint) => Promise<void>;
  /** Told whenever the marker appears or goes, so the deadline timer can be armed or disarmed. */
  onMarker: (marker: Marker | undefined) => void;
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
  private readonly o: ReconcilerOptions;
  private readonly ops: ResumeOps;
  /** The stop this process performed for the marker's job (so a retried acknowledge does not stop twice). */
  private stopped: { jobId: string; stopMs: number; at: number } | undefined;

  constructor(options: ReconcilerOptions) {
    this.o = options;
    this.ops = new ResumeOps(options);
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

  /** Reads a job; a failure is a view (`unreachable` / `not-found`), never a throw, unless aborted. */
  async readJob(jobId: string, signal: AbortSignal): Promise<JobView> {
    try {
      return { kind: "found", job: await this.o.agent.getJob(jobId, signal) };
    } catch (err) {
      if (signal.aborted) throw signal.reason;
      const e = asLullError(err);
      if (e.code === "LULL_E_JOB_NOT_FOUND" || e.terminal) return { kind: "not-found", reason: `${e.code}: ${e.message}` };
      return { kind: "unreachable", reason: `${e.code}: ${e.message}` };
    }
  }

  private async reconcileMarker(marker: Marker, req: ReconcileRequest, signal: AbortSignal): Promise<void> {
    const now = this.o.clock.now();
    const deadlineFired = req.deadlineFiredFor === marker.jobId;
    // Past the deadline the agent is not even asked: resume first.
    const view: JobView =
      deadlineFired || now >= marker.resumeDeadline
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
        if (decision.cause === "deadline") log.warn({ resumeDeadline: new Date(marker.resumeDeadline).toISOString() }, "resume deadline passed — resuming the stack");
        if (decision.cause === "unknown-job") log.warn({ reason: view.kind === "not-found" ? view.reason : "" }, "the agent does not know the marker's job — resuming the stack");
        const stopMs = this.stopped?.jobId === marker.jobId ? this.stopped.stopMs : null;
        if (await this.ops.resume(marker, decision.cause, decision.early, stopMs)) this.stopped = undefined;
        await this.ops.flushNotice(signal);
        return;
      }
    }
  }

  /** quiescing: marker first, then stop, verify, acknowledge. A failed stop resumes and refuses. */
  private async quiesce(job: Job, signal: AbortSignal): Promise<void> {
    const now = this.o.clock.now();
    this.o.log.info({ jobId: job.id, at: new Date(now).toISOString() }, "quiescing");
    const marker: Marker = {
      jobId: job.id,
      guestId: this.o.guestId,
      stack: this.o.stack,
      agent: this.o.agentAddress,
      controllerId: this.o.controllerId,
      stoppedAt: now,
      resumeDeadline: now + this.o.resumeDeadlineMs,
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
    this.ops.track(marker.jobId);
    let stoppedAt = this.stopped?.jobId === marker.jobId ? this.stopped.at : undefined;
    try {
      if (stoppedAt === undefined && !fresh) {
        // Re-attaching (after a crash, or a retried acknowledge): never stop twice.
        const status = await this.o.driver.status(signal);
        if (status === "stopped") {
          stoppedAt = marker.stoppedAt;
          log.info({ status }, "re-attached: the stack is already stopped");
        }
      }
      if (stoppedAt === undefined) {
        const stopMs = await stopAndVerify(this.o.driver, this.o.clock, signal);
        stoppedAt = this.o.clock.now();
        this.stopped = { jobId: marker.jobId, stopMs, at: stoppedAt };
        log.info({ stopMs }, "stack stopped");
        await this.o.failpoint("after-stop");
      }
    } catch (err) {
      // The deferred resume: whatever went wrong while stopping, the stack runs again.
      const reason = asLullError(err).message;
      log.warn({ err: reason }, "stopping the stack failed — resuming it and refusing the quiesce");
      await this.ops.resume(marker, "stop-failed", false, null, reason);
      this.stopped = undefined;
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
      if (view.kind === "unreachable") return;
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
      const action = decideForJob({ job, stack: this.o.stack, trackedJobId: current?.jobId, trackedResumed: current?.resumed ?? false });
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
        case "quiesce":
          await this.quiesce(job, signal);
          return; // one job at a time: the marker now owns this pass
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
    if (read.kind === "present") {
      const stopMs = this.stopped?.jobId === read.marker.jobId ? this.stopped.stopMs : null;
      await this.ops.resume(read.marker, "shutdown", false, stopMs);
    }
    await this.ops.flushNotice(AbortSignal.timeout(5_000));
  }
}
