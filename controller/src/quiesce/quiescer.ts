// How the stack is held while the snapshot is taken, and the user's steps around it.
//
//   quiesce (after the marker is on disk):
//     1. pre steps, in order. A command runs to its end; a session step (postgres, session) opens
//        its client and keeps it open. The first failure or timeout ends the quiesce: nothing
//        after it runs, the caller resumes (below) and refuses the quiesce with the reason.
//     2. the strategy holds the stack: `stop` stops it (verified stopped), `pause` freezes it
//        (verified paused where the driver can see it), `hooks` leaves it running.
//   resume (snapshotted, job ended, deadline, agent gone, shutdown, after a failed quiesce, and at
//   start-up for a marker a crashed controller left):
//     1. the strategy releases the stack: `stop` starts it, `pause` thaws it (verified running);
//        skipped when the quiesce failed before the stack was touched;
//     2. the sessions opened by pre steps end, last opened first (their stop text, e.g.
//        pg_backup_stop), also when step 1 failed;
//     3. the post steps, in order, each bounded by its timeout — ALWAYS, whatever happened before,
//        also when a pre step failed or timed out (it may have taken effect anyway, zrepl#392).
//   Steps 2 and 3 run once per quiesce: a resume retried because the stack did not come up only
//   retries step 1. Their outcome is `postStep` (./outcome.ts), reported to the agent.
//
// After a controller crash the sessions died with the process (their server-side state with them:
// PostgreSQL aborts a backup whose session ends); the resume at start-up reports them as failed
// and still runs the post steps. Pre steps are not re-run on re-attach: their effect is unknown,
// so the caller refuses the quiesce instead (see ../reconcile.ts).
import { LullError, asLullError, type Clock, type Logger } from "@lull/shared";
import { pauseAndVerify, startAndVerify, stopAndVerify, unpauseAndVerify, type StackDriver, type StackStatus } from "../stacks/driver.js";
import { summarizeOutcomes, type StepOutcome } from "./outcome.js";
import type { QuiesceConfig, QuiesceStrategy } from "./schema.js";
import { buildPostSteps, buildPreSteps, type EndStep, type PostStep, type PreStep } from "./steps.js";

export interface QuiescerOptions {
  config: QuiesceConfig;
  driver: StackDriver;
  stack: string;
  clock: Clock;
  log: Logger;
}

/** The stack is held for `jobId` by this process. */
export interface HeldStack {
  jobId: string;
  /** When the strategy finished holding it (ms since the epoch). */
  at: number;
  preMs: number;
  /** How long stopping / pausing took (0 for `hooks`). */
  stopMs: number;
}

export interface ReleaseResult {
  /** The stack runs again (verified). false: it did not come up — the caller retries (steps 2 and 3 ran anyway). */
  ok: boolean;
  /** How long starting / thawing took; null when nothing had to be released. */
  startMs: number | null;
  /** When the stack ran normally again: after the release, or for `hooks` once its sessions ended. */
  releasedAt: number;
  error?: string | undefined;
  /** Outcome of the sessions' end and the post steps; undefined when there were none. */
  postStep: string | undefined;
}

interface Episode {
  jobId: string | undefined;
  /** Opened by pre steps of this process, in order. */
  sessions: Array<{ name: string; end: EndStep }>;
  /** The strategy was asked to hold the stack (so it must be released). */
  touched: boolean;
  held?: HeldStack | undefined;
  /** No quiesce of this process: resuming for a marker left by an earlier one. */
  inherited: boolean;
  /** Steps 2 and 3 of resume are done. */
  after?: { postStep: string | undefined; sessionsEndedAt: number } | undefined;
}

export class Quiescer {
  readonly strategy: QuiesceStrategy;
  private readonly o: QuiescerOptions;
  private readonly pre: PreStep[];
  private readonly post: PostStep[];
  private episode: Episode | undefined;

  constructor(options: QuiescerOptions) {
    this.o = options;
    this.strategy = options.config.strategy;
    this.pre = buildPreSteps(options.config);
    this.post = buildPostSteps(options.config);
  }

  get hasPreSteps(): boolean {
    return this.pre.length > 0;
  }

  /** What `status` shows while this strategy holds the stack; undefined when it cannot be seen. */
  get heldStatus(): StackStatus | undefined {
    if (this.strategy === "stop") return "stopped";
    if (this.strategy === "pause" && this.o.driver.reportsPaused === true) return "paused";
    return undefined;
  }

  /** This process holds the stack for `jobId`. */
  heldFor(jobId: string): HeldStack | undefined {
    const held = this.episode?.held;
    return held?.jobId === jobId ? held : undefined;
  }

  /** Runs the pre steps, then holds the stack. Throws LULL_E_COMMAND_FAILED (a pre step), LULL_E_CANCELLED (aborted) or LULL_E_STACK_STOP_FAILED. */
  async quiesce(jobId: string, signal?: AbortSignal): Promise<HeldStack> {
    const { clock, log, stack } = this.o;
    if (this.episode !== undefined && this.episode.sessions.length > 0) {
      // Defensive: a new quiesce never leaves the sessions of an earlier one open.
      log.warn({ jobId: this.episode.jobId ?? null, quiescing: jobId }, "ending the sessions of another job");
      await this.endSessions(this.episode);
    }
    const episode: Episode = { jobId, sessions: [], touched: false, inherited: false };
    this.episode = episode;
    const t0 = clock.now();
    for (const step of this.pre) {
      const s0 = clock.now();
      try {
        const { fields, end } = await step.run({ jobId, stack, log, signal });
        if (end !== undefined) episode.sessions.push({ name: step.name, end });
        log.info({ jobId, hook: "pre", step: step.name, kind: step.kind, durationMs: clock.now() - s0, ...fields }, "quiesce step done");
      } catch (err) {
        const message = asLullError(err).message;
        log.warn({ jobId, hook: "pre", step: step.name, kind: step.kind, durationMs: clock.now() - s0, err: message }, "quiesce step failed");
        // A cancelled step stays cancelled; any other failure is the step's command failing.
        const code = asLullError(err).code === "LULL_E_CANCELLED" ? "LULL_E_CANCELLED" : "LULL_E_COMMAND_FAILED";
        throw new LullError(code, `pre step ${step.name} failed: ${message}`, { cause: err });
      }
    }
    const preMs = clock.now() - t0;
    episode.touched = true;
    const stopMs = await this.hold(signal);
    episode.held = { jobId, at: clock.now(), preMs, stopMs };
    return episode.held;
  }

  /** Releases the stack, ends the sessions, runs the post steps (see the header). Never throws. */
  async resume(jobId: string | undefined, cause: string): Promise<ReleaseResult> {
    const { clock, log } = this.o;
    let episode = this.episode;
    if (episode !== undefined && episode.jobId !== jobId && episode.sessions.length > 0) {
      // Defensive: never leave a session of another job open.
      log.warn({ jobId: episode.jobId ?? null, resuming: jobId ?? null }, "ending the sessions of another job");
      await this.endSessions(episode);
    }
    if (episode === undefined || episode.jobId !== jobId) {
      episode = { jobId, sessions: [], touched: true, inherited: true };
      this.episode = episode;
    }
    let startMs: number | null = null;
    let error: string | undefined;
    if (episode.touched) {
      try {
        startMs = await this.release();
      } catch (err) {
        error = asLullError(err).message;
      }
    }
    const upAt = clock.now();
    if (episode.after === undefined) {
      const outcomes = await this.endSessions(episode);
      const sessionsEndedAt = clock.now();
      outcomes.push(...(await this.runPost(jobId, cause)));
      episode.after = { postStep: summarizeOutcomes(outcomes), sessionsEndedAt };
      if (episode.after.postStep !== undefined) log.info({ jobId: jobId ?? null, postStep: episode.after.postStep }, "post steps done");
    }
    const releasedAt = this.strategy === "hooks" ? episode.after.sessionsEndedAt : upAt;
    if (error !== undefined) return { ok: false, startMs, releasedAt, error, postStep: episode.after.postStep };
    this.episode = undefined;
    return { ok: true, startMs, releasedAt, postStep: episode.after.postStep };
  }

  private hold(signal?: AbortSignal): Promise<number> {
    const { driver, clock } = this.o;
    switch (this.strategy) {
      case "stop":
        return stopAndVerify(driver, clock, signal);
      case "pause":
        return pauseAndVerify(driver, clock, signal);
      case "hooks":
        return Promise.resolve(0);
    }
  }

  private release(): Promise<number> {
    const { driver, clock } = this.o;
    switch (this.strategy) {
      case "stop":
        return startAndVerify(driver, clock);
      case "pause":
        return unpauseAndVerify(driver, clock);
      case "hooks":
        return Promise.resolve(0);
    }
  }

  /** Ends the sessions, last opened first; sessions of a crashed predecessor are reported lost. */
  private async endSessions(episode: Episode): Promise<StepOutcome[]> {
    const { clock, log } = this.o;
    const jobId = episode.jobId ?? null;
    const outcomes: StepOutcome[] = [];
    if (episode.inherited) {
      for (const step of this.pre.filter((s) => s.holdsSession)) {
        const error = "not ended by this process: the session of the previous controller process ended with it (PostgreSQL aborts the backup)";
        log.warn({ jobId, hook: "pre", step: step.name, kind: step.kind }, "quiesce session lost with the previous controller process");
        outcomes.push({ name: step.name, ok: false, durationMs: 0, error });
      }
      return outcomes;
    }
    for (const session of [...episode.sessions].reverse()) {
      const t0 = clock.now();
      try {
        const fields = await session.end();
        const durationMs = clock.now() - t0;
        log.info({ jobId, hook: "session-end", step: session.name, durationMs, ...fields }, "quiesce step done");
        outcomes.push({ name: session.name, ok: true, durationMs });
      } catch (err) {
        const durationMs = clock.now() - t0;
        const message = asLullError(err).message;
        log.warn({ jobId, hook: "session-end", step: session.name, durationMs, err: message }, "quiesce step failed");
        outcomes.push({ name: session.name, ok: false, durationMs, error: message });
      }
    }
    episode.sessions = [];
    return outcomes;
  }

  private async runPost(jobId: string | undefined, cause: string): Promise<StepOutcome[]> {
    const { clock, log, stack } = this.o;
    const outcomes: StepOutcome[] = [];
    for (const step of this.post) {
      const t0 = clock.now();
      try {
        const fields = await step.run({ jobId, stack, log, cause });
        const durationMs = clock.now() - t0;
        log.info({ jobId: jobId ?? null, hook: "post", step: step.name, kind: step.kind, durationMs, ...fields }, "quiesce step done");
        outcomes.push({ name: step.name, ok: true, durationMs });
      } catch (err) {
        const durationMs = clock.now() - t0;
        const message = asLullError(err).message;
        log.warn({ jobId: jobId ?? null, hook: "post", step: step.name, kind: step.kind, durationMs, err: message }, "quiesce step failed");
        outcomes.push({ name: step.name, ok: false, durationMs, error: message });
      }
    }
    return outcomes;
  }
}
