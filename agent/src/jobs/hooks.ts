// The EngineHooks of one run: each hook commits the transition (and its events) through
// the ledger before it returns, so the engine's next side effect follows durable intent.
// Progress is persisted at most every `progressIntervalMs`, plus a trailing and a final one.
import { Consistency, Phase, type SnapshotMode } from "@lull/proto";
import { LullError, type Clock, type Logger } from "@lull/shared";
import type { EngineHooks } from "../engines/engine.js";
import type { EventBus } from "../events/bus.js";
import type { GroupMembership } from "./membership.js";
import { LAPSED_STACK_HORIZON_MS, decideBarrier, waitForBarrier, type LapsedStack } from "./barrier.js";
import type { FailpointGate } from "./failpoint.js";
import type { JobRecord } from "./job.js";
import type { JobLedger } from "./ledger.js";
import type { JobEvent } from "./machine.js";

export interface RunHooksDeps {
  job: JobRecord;
  ledger: JobLedger;
  bus: EventBus;
  clock: Clock;
  log: Logger;
  signal: AbortSignal;
  failpoint: FailpointGate;
  progressIntervalMs: number;
  /** Set when the job is a member of a consistency group run: its barrier and snapshot point are the group's. */
  group?: GroupMembership | undefined;
}

export class RunHooks implements EngineHooks {
  private lastProgressAt = Number.NEGATIVE_INFINITY;
  private pendingProgress: { bytesDone: number; bytesTotal: number } | undefined;
  private trailing: AbortController | undefined;

  constructor(private readonly deps: RunHooksDeps) {}

  private get jobId(): string {
    return this.deps.job.id;
  }

  /** Commits one step; after a failpoint paused the run, nothing more is committed. */
  private commit(events: JobEvent | JobEvent[], entered?: Phase): JobRecord {
    if (this.deps.failpoint.paused) this.deps.failpoint.freeze();
    const job = this.deps.ledger.apply(this.jobId, events);
    if (entered !== undefined) this.deps.failpoint.reached(entered);
    return job;
  }

  async quiesce(): Promise<Consistency> {
    const { ledger, failpoint } = this.deps;
    if (failpoint.paused) return failpoint.hold();
    const store = ledger.store;
    let lapsed: LapsedStack[] = [];
    const job = ledger.apply(this.jobId, (current, now) => {
      lapsed = store.lapsedStacks(current.guestId, now, LAPSED_STACK_HORIZON_MS);
      return { type: "start-quiesce", stacks: store.liveStacks(current.guestId, now) };
    });
    this.deps.log.info({ stacks: job.stacks.map((s) => s.stack), timeoutMs: job.quiesceTimeoutMs }, "quiesce barrier started");
    if (failpoint.reached(Phase.PHASE_QUIESCING)) return failpoint.hold();
    const outcome = await waitForBarrier({
      jobId: this.jobId,
      store,
      bus: this.deps.bus,
      clock: this.deps.clock,
      timeoutMs: job.quiesceTimeoutMs,
      signal: this.deps.signal,
    });
    if (failpoint.paused) return failpoint.hold();
    const decision = decideBarrier(outcome, job.policy, job.quiesceTimeoutMs, lapsed);
    ledger.apply(this.jobId, decision.events);
    this.deps.log.info({ outcome: outcome.kind, consistency: decision.consistency }, "quiesce barrier ended");
    if (decision.error) throw decision.error;
    const group = this.deps.group;
    if (group) {
      // One barrier across the group: no member snapshots before every member's stacks are quiesced.
      await group.barrierEnded(decision.consistency, this.deps.signal);
      if (failpoint.paused) return failpoint.hold();
      this.deps.log.info({ groupRunId: group.groupRunId }, "group barrier passed");
    }
    return decision.consistency;
  }

  skipQuiesce(reason: string): void {
    // A group member never skips: the group's barrier is what makes its snapshot point consistent.
    if (this.deps.group) {
      throw new LullError("LULL_E_GROUP_UNSUPPORTED", `job ${this.jobId} of group run ${this.deps.group.groupRunId} cannot skip the group's quiesce barrier (${reason})`);
    }
    this.deps.log.info({ reason }, "nothing to quiesce");
    this.commit({ type: "skip-quiesce", reason });
  }

  snapshotting(mode: SnapshotMode): void {
    this.commit({ type: "snapshotting", mode }, Phase.PHASE_SNAPSHOTTING);
  }

  snapshotted(info: { mode: SnapshotMode; snapshotAt: number }): void | Promise<void> {
    const enter = () => void this.commit({ type: "snapshotted", mode: info.mode, snapshotAt: info.snapshotAt }, Phase.PHASE_SNAPSHOTTED);
    const group = this.deps.group;
    if (!group) return enter();
    // Stacks resume at `snapshotted`: in a group, only once every member's snapshot exists.
    return group.snapshotTaken(info.snapshotAt, this.deps.signal).then(enter);
  }

  archiving(info: { mode: SnapshotMode; bytesTotal: number }): void {
    this.lastProgressAt = this.deps.clock.now();
    this.commit({ type: "archiving", mode: info.mode, bytesTotal: info.bytesTotal }, Phase.PHASE_ARCHIVING);
  }

  progress(bytesDone: number, bytesTotal: number): void | Promise<void> {
    // Paused (crash tests): hold the archive without blocking the thread, so the agent still answers
    // (a controller's GetJob after `snapshotted`) until the test kills it.
    if (this.deps.failpoint.paused) return this.deps.failpoint.hold();
    const now = this.deps.clock.now();
    const wait = this.lastProgressAt + this.deps.progressIntervalMs - now;
    if (wait <= 0) {
      this.writeProgress({ bytesDone, bytesTotal }, now);
      return;
    }
    this.pendingProgress = { bytesDone, bytesTotal };
    if (this.trailing) return;
    const timer = new AbortController();
    this.trailing = timer;
    this.deps.clock.sleep(wait, timer.signal).then(
      () => {
        this.trailing = undefined;
        this.flushProgress();
      },
      () => {},
    );
  }

  note(message: string): void {
    this.commit({ type: "note", message });
  }

  /** Persists the last progress report that is still held back (the final one). */
  flushProgress(): void {
    this.trailing?.abort();
    this.trailing = undefined;
    const pending = this.pendingProgress;
    if (!pending || this.deps.failpoint.paused) return;
    try {
      this.writeProgress(pending, this.deps.clock.now());
    } catch (err) {
      // The job may have left `archiving` meanwhile (failed, cancelled): the counters no longer matter.
      this.deps.log.debug({ err }, "progress not recorded");
    }
  }

  /** Stops the trailing progress timer. */
  dispose(): void {
    this.trailing?.abort();
    this.trailing = undefined;
  }

  private writeProgress(p: { bytesDone: number; bytesTotal: number }, now: number): void {
    this.pendingProgress = undefined;
    this.lastProgressAt = now;
    this.deps.ledger.apply(this.jobId, { type: "progress", bytesDone: p.bytesDone, bytesTotal: p.bytesTotal });
  }
}
