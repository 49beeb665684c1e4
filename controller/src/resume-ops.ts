// Resuming the stack, and telling the agent about it afterwards.
//
// Order of a resume: release the stack (start / unpause, verified up), end the quiesce sessions and
// run the post steps (./quiesce/quiescer.ts: always, once), clear the marker, log `stack resumed`,
// then tell the agent (ReportResumed with the post steps' outcome, or RefuseQuiesce — its reason
// carrying that outcome — when the agent still waits for an acknowledgement).
// The marker is cleared before the agent is told: an unreachable agent must never leave a marker
// that would make the next pass stop the stack again. What the agent has not been told yet stays in
// `tracked.notice` and is retried on every pass until the agent answers or the job has ended.
import { asLullError, type Clock, type ErrorCode, type Logger } from "@lull/shared";
import type { Job } from "@lull/proto";
import type { AgentApi, ResumeReport } from "./agent-link.js";
import type { Failpoint } from "./config.js";
import { isPendingQuiesce, type ResumeCause } from "./decide.js";
import type { Marker, MarkerStore } from "./marker-store.js";
import { withPostOutcome } from "./quiesce/outcome.js";
import type { Quiescer } from "./quiesce/quiescer.js";
import { MemoryResumeTimings, type ResumeTimings } from "./resume-timing.js";
import type { StackDriver } from "./stacks/driver.js";

/** Answers that say the agent will never take this notice for this job; any other failure is retried. */
const NEVER_ACCEPTED: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  "LULL_E_JOB_NOT_FOUND",
  "LULL_E_JOB_TERMINAL",
  "LULL_E_WRONG_PHASE",
  "LULL_E_STACK_NOT_REGISTERED",
  "LULL_E_INVALID_ARGUMENT",
]);

export type Notice = { kind: "report"; report: ResumeReport; cause: ResumeCause } | { kind: "refuse"; reason: string; postStep?: string | undefined };

export interface TrackedJob {
  jobId: string;
  /** This stack was resumed (or never stopped) for this job: it must not be stopped again for it. */
  resumed: boolean;
  /** It was already stopped when the quiesce began: acknowledged as such, never started by this controller. */
  leftStopped?: boolean | undefined;
  notice?: Notice | undefined;
}

export interface ResumeOpsOptions {
  stack: string;
  agent: AgentApi;
  driver: StackDriver;
  /** Releases the stack and runs the post steps. */
  quiescer: Quiescer;
  markers: MarkerStore;
  clock: Clock;
  log: Logger;
  failpoint: (name: Failpoint) => Promise<void>;
  onMarker: (marker: Marker | undefined) => void;
  /** Where the durations of recent resumes are kept (default: in memory). */
  timings?: ResumeTimings | undefined;
  /** Told after each resume that brought the stack up (the metrics count them by cause). */
  onResumed?: ((cause: ResumeCause, downtimeMs: number | null) => void) | undefined;
}

export class ResumeOps {
  tracked: TrackedJob | undefined;
  private readonly o: ResumeOpsOptions;
  private readonly timings: ResumeTimings;

  constructor(options: ResumeOpsOptions) {
    this.o = options;
    this.timings = options.timings ?? new MemoryResumeTimings();
  }

  /** The longest of this stack's recent resumes (release verified up + post steps). */
  get longestResumeMs(): number | undefined {
    return this.timings.longestMs();
  }

  track(jobId: string, notice?: Notice): void {
    if (this.tracked?.jobId !== jobId) this.tracked = { jobId, resumed: false };
    if (notice !== undefined) this.tracked = { ...this.tracked, resumed: true, notice };
  }

  /** Tracks a job for which the stack was found stopped and is left as it is. */
  trackLeftStopped(jobId: string): void {
    this.tracked = { jobId, resumed: true, leftStopped: true };
  }

  untrack(): void {
    this.tracked = undefined;
  }

  /**
   * Releases the stack for `marker`'s job (verified up), runs the post steps, clears the marker.
   * Never cancelled by a signal (only bounded by the driver's and the steps' timeouts). Returns false
   * when the stack did not come up: the marker then stays and the next pass tries again.
   */
  async resume(marker: Marker, cause: ResumeCause, early: boolean, stopMs: number | null, refuseReason?: string): Promise<boolean> {
    const log = this.o.log.child({ jobId: marker.jobId });
    if (cause === "snapshotted") log.info({ jobId: marker.jobId, at: new Date(this.o.clock.now()).toISOString() }, "snapshotted — resuming app early");
    if (cause === "snapshotted" || cause === "terminal") await this.o.failpoint("before-resume");
    const began = this.o.clock.now();
    const result = await this.o.quiescer.resume(marker.jobId, cause);
    if (!result.ok) {
      log.error({ cause, err: result.error ?? "unknown" }, "resuming the stack failed — will retry");
      return false;
    }
    const tookMs = this.o.clock.now() - began;
    const resumedAt = result.releasedAt;
    const downtimeMs = resumedAt - marker.stoppedAt;
    this.o.markers.clear();
    this.o.onMarker(undefined);
    const { startMs, postStep } = result;
    log.info({ jobId: marker.jobId, downtimeMs, stopMs, startMs, early, cause, strategy: this.o.quiescer.strategy, postStep: postStep ?? null }, "stack resumed");
    this.timings.record(tookMs);
    this.o.onResumed?.(cause, downtimeMs);
    const notice: Notice =
      refuseReason !== undefined
        ? { kind: "refuse", reason: withPostOutcome(refuseReason, postStep), postStep }
        : { kind: "report", cause, report: { jobId: marker.jobId, downtimeMs, resumedAt, early, postStep } };
    this.track(marker.jobId, notice);
    return true;
  }

  /** A corrupt marker: the stack may be down and no job is known. Release it, run the post steps, clear the marker. */
  async resumeWithoutJob(cause: ResumeCause): Promise<boolean> {
    const began = this.o.clock.now();
    const result = await this.o.quiescer.resume(undefined, cause);
    if (!result.ok) {
      this.o.log.error({ cause, err: result.error ?? "unknown" }, "resuming the stack failed — will retry");
      return false;
    }
    const tookMs = this.o.clock.now() - began;
    this.o.markers.clear();
    this.o.onMarker(undefined);
    const { startMs, postStep } = result;
    this.o.log.info(
      { jobId: null, downtimeMs: null, stopMs: null, startMs, early: false, cause, strategy: this.o.quiescer.strategy, postStep: postStep ?? null },
      "stack resumed",
    );
    this.timings.record(tookMs);
    this.o.onResumed?.(cause, null);
    return true;
  }

  /** Tells the agent what it has not heard yet. `job`: the job as just read, if the caller has it. */
  async flushNotice(signal: AbortSignal, job?: Job): Promise<void> {
    const tracked = this.tracked;
    const notice = tracked?.notice;
    if (tracked === undefined || notice === undefined) return;
    const log = this.o.log.child({ jobId: tracked.jobId });
    try {
      const current = job ?? (await this.o.agent.getJob(tracked.jobId, signal));
      if (isPendingQuiesce(current, this.o.stack)) {
        // The agent still waits for this stack, which runs again: say no, with the reason.
        const reason =
          notice.kind === "refuse" ? notice.reason : withPostOutcome(`the stack was resumed before the snapshot (${notice.cause})`, notice.report.postStep);
        await this.o.agent.refuse(tracked.jobId, reason, signal);
        log.warn({ reason }, "quiesce refused");
      } else if (notice.kind === "report") {
        await this.o.agent.reportResumed(notice.report, signal);
        log.debug({ downtimeMs: notice.report.downtimeMs, early: notice.report.early }, "resume reported");
      }
      this.tracked = { ...tracked, notice: undefined };
    } catch (err) {
      const e = asLullError(err);
      if (signal.aborted || !NEVER_ACCEPTED.has(e.code)) {
        // Unreachable, or an agent error (internal, a credential it refuses): the notice stays and
        // is sent again on the next pass, until the agent takes it or the job is seen ended.
        log.warn({ code: e.code, err: e.message }, "telling the agent about the resume failed — will retry");
        return;
      }
      // The agent will never accept it (job ended, unknown, wrong phase): drop it.
      log.warn({ code: e.code, err: e.message }, "the agent rejected the resume notice");
      this.tracked = { ...tracked, notice: undefined };
    }
  }
}
