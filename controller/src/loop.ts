// The reconcile loop: one pass at a time, woken by events ("look again" at a job), by a tick while
// the stream is broken (poll) or while a job is in hand (resync), and by the resume deadline.
//
// The deadline timer is armed whenever a marker exists and depends on nothing but the clock. It fires
// at the marker's resumeAt (the deadline minus the lead the stack's start needs), and then it aborts the pass in flight (an agent call that hangs, a stop that takes too long) and runs
// a pass that resumes the stack without asking the agent first.
import { LullError, asLullError, type Clock, type Logger } from "@lull/shared";
import type { Marker } from "./marker-store.js";
import type { ReconcileRequest, Reconciler } from "./reconcile.js";

export interface LoopOptions {
  clock: Clock;
  log: Logger;
  pollIntervalMs: number;
}

interface DeadlineTimer {
  jobId: string;
  deadline: number;
  abort: AbortController;
}

const swallow = () => undefined;

export class ControllerLoop {
  private readonly o: LoopOptions;
  private reconciler: Reconciler | undefined;
  private hints = new Set<string>();
  private poll = false;
  private deadlineFiredFor: string | undefined;
  private pending = false;
  private wake: (() => void) | undefined;
  private passAbort: AbortController | undefined;
  private deadlineTimer: DeadlineTimer | undefined;
  private streamHealthy = false;
  private lastPassFailed = false;

  constructor(options: LoopOptions) {
    this.o = options;
  }

  /** The reconciler is created after the loop (it reports markers to `onMarker`). */
  bind(reconciler: Reconciler): void {
    this.reconciler = reconciler;
  }

  /** Asks for a pass: `jobId` to look at, `poll` to list the guest's active jobs too. */
  request(r: { jobId?: string | undefined; poll?: boolean } = {}): void {
    if (r.jobId) this.hints.add(r.jobId);
    if (r.poll) this.poll = true;
    this.pending = true;
    this.wake?.();
  }

  setStreamHealthy(healthy: boolean): void {
    if (healthy && !this.streamHealthy) {
      this.o.log.info({}, "event stream connected");
      this.request({ poll: true }); // catch up with whatever happened while it was down
    }
    this.streamHealthy = healthy;
  }

  /** Arms the deadline timer for a marker, or disarms it when the marker is gone. */
  onMarker(marker: Marker | undefined): void {
    const armed = this.deadlineTimer;
    if (marker === undefined) {
      armed?.abort.abort();
      this.deadlineTimer = undefined;
      return;
    }
    if (armed && armed.jobId === marker.jobId && armed.deadline === marker.resumeAt) return;
    armed?.abort.abort();
    const timer: DeadlineTimer = { jobId: marker.jobId, deadline: marker.resumeAt, abort: new AbortController() };
    this.deadlineTimer = timer;
    const waitMs = Math.max(0, marker.resumeAt - this.o.clock.now());
    this.o.clock.sleep(waitMs, timer.abort.signal).then(() => {
      if (this.deadlineTimer !== timer) return;
      this.o.log.warn({ jobId: timer.jobId }, "resume point reached");
      this.deadlineFiredFor = timer.jobId;
      this.passAbort?.abort(new LullError("LULL_E_AGENT_UNREACHABLE", "the resume deadline was reached"));
      this.request({});
    }, swallow);
  }

  /** Runs passes until `signal` aborts; the tick runs alongside. */
  async run(signal: AbortSignal): Promise<void> {
    const reconciler = this.reconciler;
    if (reconciler === undefined) throw new LullError("LULL_E_INTERNAL", "ControllerLoop.run before bind");
    const ticking = this.tick(reconciler, signal);
    while (!signal.aborted) {
      await this.nextRequest(signal);
      if (signal.aborted) break;
      const req = this.take();
      const passAbort = new AbortController();
      this.passAbort = passAbort;
      try {
        await reconciler.reconcile(req, AbortSignal.any([signal, passAbort.signal]));
        this.lastPassFailed = false;
      } catch (err) {
        this.lastPassFailed = true;
        if (!signal.aborted && !passAbort.signal.aborted) {
          this.o.log.warn({ err: asLullError(err).message }, "reconcile pass failed — will look again");
        }
        // Nothing is lost: the next pass starts from real state again.
        if (req.poll) this.poll = true;
        for (const id of req.hints) this.hints.add(id);
      } finally {
        this.passAbort = undefined;
      }
    }
    await ticking;
  }

  /** Stops the deadline timer (at shutdown, once the stack runs again). */
  dispose(): void {
    this.deadlineTimer?.abort.abort();
    this.deadlineTimer = undefined;
  }

  private take(): ReconcileRequest {
    const req: ReconcileRequest = {
      hints: [...this.hints],
      poll: this.poll,
      deadlineFiredFor: this.deadlineFiredFor,
    };
    this.hints.clear();
    this.poll = false;
    this.deadlineFiredFor = undefined;
    this.pending = false;
    return req;
  }

  private nextRequest(signal: AbortSignal): Promise<void> {
    if (this.pending || signal.aborted) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const done = () => {
        this.wake = undefined;
        signal.removeEventListener("abort", done);
        resolve();
      };
      this.wake = done;
      signal.addEventListener("abort", done, { once: true });
    });
  }

  private async tick(reconciler: Reconciler, signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      await this.o.clock.sleep(this.o.pollIntervalMs, signal).catch(swallow);
      if (signal.aborted) break;
      if (!this.streamHealthy) this.request({ poll: true });
      else if (this.lastPassFailed || reconciler.busy) this.request({});
    }
  }
}
