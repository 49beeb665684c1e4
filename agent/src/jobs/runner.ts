// Runs jobs: one engine run per job, with hooks that commit each phase before the engine
// goes on. Cancellation (an operator's CancelJob, or the agent's shutdown) aborts the run's
// AbortSignal; the engine cleans up in `finally` and the job ends `cancelled`. A run that does
// not settle within the grace period is settled by the runner and left to finish in the background.
import { Phase } from "@lull/proto";
import { LullError, asLullError, isTerminal, phaseName, type Clock, type Logger } from "@lull/shared";
import type { GuestConfig } from "../config.js";
import type { BackupEngine } from "../engines/engine.js";
import type { EventBus } from "../events/bus.js";
import type { GroupMemberships } from "./membership.js";
import { FailpointGate } from "./failpoint.js";
import { RunHooks } from "./hooks.js";
import type { JobRecord } from "./job.js";
import type { JobLedger } from "./ledger.js";
import { checkIntegrity } from "../backups/integrity.js";

export type EngineFor = (guest: GuestConfig) => BackupEngine;

export interface JobRunnerDeps {
  ledger: JobLedger;
  bus: EventBus;
  clock: Clock;
  log: Logger;
  guests: readonly GuestConfig[];
  engineFor: EngineFor;
  /** How long a cancelled run gets to clean up before the runner settles the job itself. */
  cancelGraceMs: number;
  /** Phase of the crash-test failpoint (`pause-in:<phase>`), if any. */
  failpoint?: Phase | undefined;
  progressIntervalMs?: number;
  /** Consistency groups: the membership of a job that belongs to a running group run. */
  groups?: GroupMemberships | undefined;
}

interface ActiveRun {
  abort: AbortController;
  done: Promise<void>;
  cancelReason?: string;
}

export class JobRunner {
  private readonly runs = new Map<string, ActiveRun>();

  constructor(private readonly deps: JobRunnerDeps) {}

  isRunning(jobId: string): boolean {
    return this.runs.has(jobId);
  }

  get activeCount(): number {
    return this.runs.size;
  }

  /**
   * Starts running a job that was just created (in `queued`). `engine` replaces the guest's own
   * (a backup Proxmox started by itself, followed through vzdump's hooks).
   */
  start(job: JobRecord, engine?: BackupEngine): void {
    if (this.runs.has(job.id)) return;
    const guest = this.deps.guests.find((g) => g.id === job.guestId);
    if (!guest) throw new LullError("LULL_E_UNKNOWN_GUEST", `guest ${job.guestId} is not configured`);
    const abort = new AbortController();
    const run: ActiveRun = { abort, done: Promise.resolve() };
    run.done = this.run(job, guest, run, engine).finally(() => this.runs.delete(job.id));
    this.runs.set(job.id, run);
  }

  /**
   * Cancels a job: aborts its run and waits (bounded by the grace period) until it ended.
   * A job without a run in this process is cancelled at once. Returns the job as it is then.
   */
  async cancel(jobId: string, reason: string): Promise<JobRecord> {
    const run = this.runs.get(jobId);
    if (!run) return this.deps.ledger.apply(jobId, { type: "cancel", reason });
    run.cancelReason ??= reason;
    run.abort.abort(new LullError("LULL_E_CANCELLED", reason));
    await this.settleWithin([jobId], this.deps.cancelGraceMs);
    return this.deps.ledger.store.getJob(jobId) as JobRecord;
  }

  /** Cancels every run (agent shutdown) and waits for them, at most `graceMs`. */
  async shutdown(reason: string, graceMs: number): Promise<void> {
    const ids = [...this.runs.keys()];
    for (const id of ids) {
      const run = this.runs.get(id) as ActiveRun;
      run.cancelReason ??= reason;
      run.abort.abort(new LullError("LULL_E_CANCELLED", reason));
    }
    await this.settleWithin(ids, graceMs);
  }

  /** Waits for the runs of `ids`; jobs still not ended after `ms` are cancelled by the runner. */
  private async settleWithin(ids: string[], ms: number): Promise<void> {
    const timer = new AbortController();
    const all = Promise.all(ids.map((id) => this.runs.get(id)?.done ?? Promise.resolve()));
    const expired = this.deps.clock.sleep(ms, timer.signal).then(
      () => true,
      () => false,
    );
    const timedOut = await Promise.race([all.then(() => false), expired]);
    timer.abort();
    if (!timedOut) return;
    for (const id of ids) {
      const job = this.deps.ledger.store.getJob(id);
      if (!job || isTerminal(job.phase)) continue;
      const reason = this.runs.get(id)?.cancelReason ?? "cancelled";
      this.deps.log.warn({ jobId: id, graceMs: ms, phase: phaseName(job.phase) }, "run did not stop within its grace period");
      this.settle(id, { type: "cancel", reason });
    }
  }

  private async run(job: JobRecord, guest: GuestConfig, active: ActiveRun, override?: BackupEngine): Promise<void> {
    const log = this.deps.log.child({ jobId: job.id, guestId: job.guestId });
    const failpoint = new FailpointGate(this.deps.failpoint, log);
    const own = active.abort.signal;
    const group = this.deps.groups?.membershipOf(job.id);
    // A group member also stops when its group fails before the snapshot point.
    const signal = group ? AbortSignal.any([own, group.signal]) : own;
    const hooks = new RunHooks({
      job,
      ledger: this.deps.ledger,
      bus: this.deps.bus,
      clock: this.deps.clock,
      log,
      signal,
      failpoint,
      progressIntervalMs: this.deps.progressIntervalMs ?? 250,
      group,
    });
    try {
      if (failpoint.reached(Phase.PHASE_QUEUED)) await failpoint.hold();
      const engine = override ?? this.deps.engineFor(guest);
      const result = await engine.run({ jobId: job.id, guest, hooks, signal, log, ...(group ? { groupRunId: group.groupRunId } : {}) });
      if (failpoint.paused) await failpoint.hold();
      hooks.flushProgress();
      const done = this.deps.ledger.apply(job.id, {
        type: "done",
        archivePath: result.archivePath,
        archiveBytes: result.archiveBytes,
        ...(result.sha256 !== undefined ? { sha256: result.sha256 } : {}),
        ...(result.manifest !== undefined ? { manifest: result.manifest } : {}),
      });
      log.info({ archivePath: done.archivePath, archiveBytes: done.archiveBytes, totalMs: done.totalMs }, "backup done");
      // Integrity of the point's archive, stored on the point (backup-info shows it).
      // The job is done whatever happens here: a check that cannot be stored is logged, never a job failure.
      try {
        const point = this.deps.ledger.backups.ofJob(job.id);
        if (point) {
          const integrity = await checkIntegrity(point, () => new Date(this.deps.clock.now()));
          this.deps.ledger.backups.setIntegrity(point.id, integrity);
          (integrity.state === "failed" ? log.error : log.info).call(log, { pointId: point.id, integrity }, "restore point integrity checked");
        }
      } catch (err) {
        log.error({ err, jobId: job.id }, "the restore point's integrity could not be recorded");
      }
      if (failpoint.reached(Phase.PHASE_DONE)) await failpoint.hold();
    } catch (err) {
      if (failpoint.paused) await failpoint.hold();
      const e = asLullError(err);
      const stoppedByGroup = group?.failure !== undefined && (e.code === "LULL_E_CANCELLED" || e.code === "LULL_E_GROUP_MEMBER_FAILED" || e.code === group.failure.code);
      if (own.aborted) {
        this.settle(job.id, { type: "cancel", reason: active.cancelReason ?? e.message });
      } else if (stoppedByGroup && group?.failure) {
        log.warn({ groupRunId: group.groupRunId, code: group.failure.code }, "member stopped: its group failed");
        this.settle(job.id, { type: "fail", code: group.failure.code, message: group.failure.message });
      } else {
        log.warn({ code: e.code, err: e.message }, "backup failed");
        this.settle(job.id, { type: "fail", code: e.code, message: e.message });
      }
      const ended = this.deps.ledger.store.getJob(job.id);
      if (ended && failpoint.reached(ended.phase)) await failpoint.hold();
    } finally {
      hooks.dispose();
    }
  }

  /** Ends a job unless it already ended (a failed barrier commits its own failure). */
  private settle(jobId: string, event: { type: "cancel"; reason: string } | { type: "fail"; code: LullError["code"]; message: string }): void {
    try {
      const current = this.deps.ledger.store.getJob(jobId);
      if (!current || isTerminal(current.phase)) return;
      this.deps.ledger.apply(jobId, event);
    } catch (err) {
      this.deps.log.error({ jobId, err }, "could not record the end of a job");
    }
  }
}
