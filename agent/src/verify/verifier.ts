// The verifier: app-level verification of restore points on ephemeral replicas (README "Restore
// and verify"). For a point it makes a replica (createReplica), restores the point into it through
// the restore port (native: the one archive extractor; vzdump: a scratch guest), runs each
// configured stack's check, records the outcome and evidence, moves the stack's verified marker
// on a pass, and tears the replica down on every path. At start (`recover`) it tears down every
// replica a previous run left (found by the agent's prefix) and ends the runs that were open then.
//
// Each change of a run is one transaction on the shared ledger (row + events), published after it
// commits, like a job's; events are NOTE events whose job id is the run's id (`v-…`).
import { randomBytes } from "node:crypto";
import { LullError, type Clock, type CommandRunner, type Launcher, type Logger } from "@lull/shared";
import type { BackupStore } from "../backups/store.js";
import type { RestorePoint } from "../backups/restore-point.js";
import type { Ledger } from "../ledger/ledger.js";
import { noteDraft, type EventDraft } from "../ledger/event-log.js";
import type { VerifyConfig, VerifyCheck } from "./config.js";
import { decideVerification, type VerifyDecision } from "./decide.js";
import { newVerifyRecord, transition, type StackResult, type VerifyEvent, type VerifyRecord } from "./machine.js";
import { createReplica, sweepReplicas, teardownReplica, type Replica, type TeardownDeps, type TeardownReport } from "./replica.js";
import { runCommandCheck } from "./checks/command.js";
import { runPostgresCheck } from "./checks/postgres.js";
import type { CheckOutcome } from "./checks/outcome.js";
import type { VerifyStore } from "./store.js";
import { pickSparePort } from "./ports.js";

/** Restores a point into the replica (`replica.root/<volume>/…`), or says why it cannot. */
export type RestoreIntoReplica = (point: RestorePoint, replica: Replica, signal: AbortSignal) => Promise<void>;

export interface VerifierDeps {
  config: VerifyConfig;
  prefix: string;
  scratchDir: string;
  store: VerifyStore;
  backups: BackupStore;
  ledger: Ledger;
  runner: CommandRunner;
  launcher: Launcher;
  restore: RestoreIntoReplica;
  teardown?: Omit<TeardownDeps, "runner">;
  log: Logger;
  clock: Clock;
  /** A failpoint for crash tests: called after each phase is committed. */
  afterPhase?: (record: VerifyRecord) => Promise<void> | void;
}

export interface VerifyOptions {
  signal?: AbortSignal | undefined;
  /** Told the run once it is recorded (before the replica is made). */
  onCreated?: (record: VerifyRecord) => void;
}

const DAY = 24 * 3600_000;
const HOUR = 3600_000;

export class Verifier {
  private readonly running = new Map<string, AbortController>();
  private timer: NodeJS.Timeout | undefined;
  private ticking: Promise<void> | undefined;
  private closed = false;
  private again = false;

  constructor(private readonly deps: VerifierDeps) {}

  private get teardownDeps(): TeardownDeps {
    return { runner: this.deps.runner, ...this.deps.teardown };
  }

  /** The checks declared for a guest's stacks. */
  checksOf(guestId: string): Array<{ stack: string; check: VerifyCheck }> {
    return this.deps.config.checks.filter((c) => c.guest === guestId).map((c) => ({ stack: c.stack, check: c.check }));
  }

  /** At start: tears down what a crashed run left and ends the runs that were open. */
  async recover(): Promise<{ swept: TeardownReport[]; interrupted: string[] }> {
    const swept = await sweepReplicas(this.deps.scratchDir, this.deps.prefix, this.teardownDeps);
    for (const r of swept) {
      if (r.error !== undefined) {
        this.deps.log.error({ dir: r.dir, err: r.error }, "verification replica left by an earlier run could not be torn down: remove it by hand (unmount what is mounted below it first); the agent tries again at its next start");
      } else {
        this.deps.log.warn({ dir: r.dir, killed: r.killed, unmounted: r.unmounted, vmid: r.destroyedVmid }, "verification replica left by an earlier run torn down");
      }
    }
    const interrupted: string[] = [];
    for (const open of this.deps.store.open()) {
      this.apply(open, { type: "interrupted" });
      interrupted.push(open.id);
    }
    return { swept, interrupted };
  }

  /** Whether the guest's newest checked point is to be verified now. */
  decide(guestId: string): VerifyDecision {
    const points = this.deps.backups.list({ guestId, limit: 1 });
    const newest = this.checksOf(guestId).length > 0 ? points[0] : undefined;
    const last = newest ? this.deps.store.ofPoint(newest.id)[0] : undefined;
    return decideVerification({
      newestPointId: newest?.id,
      last: last && { phase: last.phase === "passed" || last.phase === "failed" || last.phase === "cancelled" ? last.phase : "running", endedAt: last.endedAt },
      now: this.deps.clock.now(),
      outdatedAfterMs: this.deps.config.outdatedAfterDays * DAY,
      retryFailedAfterMs: this.deps.config.retryFailedAfterHours * HOUR,
    });
  }

  /** One pass: verifies each guest's newest point where decide() says so, one at a time. */
  tick(): Promise<void> {
    if (this.ticking) {
      // A point that ended while a pass runs gets a pass of its own right after.
      this.again = true;
      return this.ticking;
    }
    this.ticking = (async () => {
      // Yield first: the pass must be in `ticking` before its `finally` clears it.
      await Promise.resolve();
      try {
        const guests = [...new Set(this.deps.config.checks.map((c) => c.guest))];
        for (const guestId of guests) {
          if (this.closed) return;
          const d = this.decide(guestId);
          if (!d.verify) continue;
          this.deps.log.info({ guestId, pointId: d.pointId, why: d.why }, "verifying restore point");
          await this.verify(d.pointId).catch((err: unknown) => this.deps.log.error({ err, guestId, pointId: d.pointId }, "verification could not run"));
        }
      } finally {
        this.ticking = undefined;
        if (this.again && !this.closed) {
          this.again = false;
          void this.tick();
        }
      }
    })();
    return this.ticking;
  }

  /** Runs tick() now and every `intervalMs`. */
  start(intervalMs: number): void {
    void this.tick();
    this.timer = setInterval(() => void this.tick(), intervalMs);
    this.timer.unref();
  }

  /** Cancels running verifications (their replicas are torn down) and stops the ticks. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    for (const c of this.running.values()) c.abort(new LullError("LULL_E_CANCELLED", "the agent is stopping"));
    await this.ticking;
  }

  /** Cancels the verification `id` if it runs; false when it does not. */
  cancel(id: string): boolean {
    const c = this.running.get(id);
    c?.abort(new LullError("LULL_E_CANCELLED", "verification cancelled"));
    return c !== undefined;
  }

  /** Starts verifying a point; resolves with the run as created (phase restoring) while it goes on. */
  startVerify(pointId: string): Promise<VerifyRecord> {
    return new Promise((resolve, reject) => {
      this.verify(pointId, { onCreated: resolve }).catch(reject);
    });
  }

  /** Verifies one point now; resolves with the ended run (passed, failed or cancelled). */
  async verify(pointId: string, options: VerifyOptions = {}): Promise<VerifyRecord> {
    const point = this.deps.backups.get(pointId);
    if (!point) throw new LullError("LULL_E_INVALID_ARGUMENT", `restore point ${pointId} does not exist: list them with lullctl backups`);
    const checks = this.checksOf(point.guestId);
    if (checks.length === 0) {
      throw new LullError("LULL_E_INVALID_ARGUMENT", `guest ${point.guestId} declares no verification check: add verify.checks entries for its stacks to the agent's configuration`);
    }
    const { clock, log } = this.deps;
    const id = `v-${new Date(clock.now()).toISOString().replace(/[-:.]/g, "").slice(0, 15)}-${randomBytes(3).toString("hex")}`;
    const controller = new AbortController();
    const onAbort = () => controller.abort(options.signal?.reason);
    options.signal?.addEventListener("abort", onAbort, { once: true });
    const timer = setTimeout(() => controller.abort(new LullError("LULL_E_VERIFY_TIMEOUT", `verification took longer than verify.timeoutMs (${this.deps.config.timeoutMs} ms)`)), this.deps.config.timeoutMs);
    this.running.set(id, controller);
    const signal = controller.signal;

    let record = newVerifyRecord(id, point.id, point.guestId, clock.now());
    this.deps.ledger.commit(() => {
      this.deps.store.insert(record);
      this.deps.ledger.append([this.note(record, `verification ${id} of ${point.id} restoring`)], clock.now());
    });
    options.onCreated?.(record);
    await this.deps.afterPhase?.(record);
    let replica: Replica | undefined;
    try {
      const t0 = clock.now();
      replica = await createReplica(this.deps.scratchDir, this.deps.prefix, {
        runId: id,
        pointId: point.id,
        guestId: point.guestId,
        port: await pickSparePort(this.deps.config.ports, this.deps.scratchDir),
        createdAt: t0,
      });
      await this.deps.restore(point, replica, signal);
      signal.throwIfAborted();
      record = this.apply(record, { type: "restored", ms: clock.now() - t0 });
      await this.deps.afterPhase?.(record);
      const t1 = clock.now();
      const results: StackResult[] = [];
      for (const { stack, check } of checks) {
        signal.throwIfAborted();
        const outcome = await this.runCheck(replica, stack, check, signal).catch((err: unknown): CheckOutcome => {
          if (signal.aborted) throw signal.reason;
          return { ok: false, reason: err instanceof Error ? err.message : String(err), durationMs: 0, evidence: {} };
        });
        results.push({ stack, check: check.type, ...outcome });
      }
      signal.throwIfAborted();
      record = this.apply(record, { type: "checked", results, ms: clock.now() - t1 });
    } catch (err) {
      // Aborted (timeout, cancel, shutdown): the abort's reason says why, whichever step it stopped —
      // not that step's own "was cancelled before it started".
      const aborted = signal.aborted && signal.reason instanceof Error ? signal.reason.message : undefined;
      const reason = aborted ?? (err instanceof Error ? err.message : String(err));
      // Cancelled by the operator, a schedule's deadline or the agent stopping: not a failure of the point.
      const code = (signal.reason as { code?: string } | undefined)?.code;
      const cancelled = signal.aborted && (code === "LULL_E_CANCELLED" || code === "LULL_E_SHUTTING_DOWN");
      record = this.apply(record, { type: cancelled ? "cancelled" : "failed", reason });
    } finally {
      clearTimeout(timer);
      options.signal?.removeEventListener("abort", onAbort);
    }
    await this.deps.afterPhase?.(record);
    const t2 = clock.now();
    if (replica) {
      try {
        await teardownReplica(replica.dir, this.teardownDeps);
      } catch (err) {
        log.error({ err, dir: replica.dir }, "verification replica teardown failed; the next start sweeps it");
        record = this.apply(record, { type: "failed", reason: `teardown failed: ${err instanceof Error ? err.message : String(err)}` });
      }
    }
    record = this.apply(record, { type: "torn-down", ms: clock.now() - t2 });
    this.running.delete(id);
    log.info({ verificationId: id, pointId: point.id, outcome: record.phase, reason: record.reason }, "verification ended");
    return record;
  }

  private async runCheck(replica: Replica, stack: string, check: VerifyCheck, signal: AbortSignal): Promise<CheckOutcome> {
    if (check.type === "postgres") return runPostgresCheck(replica, check, { runner: this.deps.runner, launcher: this.deps.launcher, signal });
    return runCommandCheck(replica, stack, check, { runner: this.deps.runner, signal, timeoutMs: this.deps.config.timeoutMs });
  }

  /** One committed change of a run: the row, its events, and (passed) the stacks' verified markers. */
  private apply(record: VerifyRecord, event: VerifyEvent): VerifyRecord {
    const now = this.deps.clock.now();
    const next = transition(record, event, now);
    this.deps.ledger.commit(() => {
      this.deps.store.save(next);
      if (next.phase === "passed") {
        const point = this.deps.backups.get(next.pointId);
        for (const r of next.results) {
          const marker = this.deps.store.markers(next.guestId).find((m) => m.stack === r.stack);
          const markerPoint = marker && this.deps.backups.get(marker.verifiedBackupId);
          // The marker only moves forward: an older point passing again leaves a newer one marked.
          if (point && (!markerPoint || markerPoint.createdAt.getTime() <= point.createdAt.getTime())) this.deps.store.mark(next.guestId, r.stack, next.pointId, now);
        }
      }
      const message =
        next.phase === record.phase
          ? `verification ${next.id}: ${next.reason}`
          : `verification ${next.id} of ${next.pointId} ${next.phase}${next.phase === "failed" || next.phase === "cancelled" || next.phase === "tearing-down" ? (next.reason ? `: ${next.reason}` : "") : ""}`;
      this.deps.ledger.append([this.note(next, message)], now);
    });
    return next;
  }

  private note(record: VerifyRecord, message: string): EventDraft {
    return noteDraft({ jobId: record.id, guestId: record.guestId, message, errorCode: record.phase === "failed" ? "LULL_E_VERIFY_FAILED" : "" });
  }
}
