// The quiesce barrier: the stacks fixed into the job at `quiescing` each acknowledge or refuse.
// It ends when all acknowledged, at the first refusal, or when the quiesce timeout passes.
// Each committed STACK event only says "look again": the outcome is read from the store, once per
// published batch (the K acknowledgements of one shared commit cost one read of the job, not K).
import { Consistency, QuiescePolicy, StackState, type StackStatus } from "@lull/proto";
import { LullError, isTerminal, phaseName, type Clock } from "@lull/shared";
import type { EventBus } from "../events/bus.js";
import type { JobEvent } from "./machine.js";
import type { JobStore } from "./store.js";

export type BarrierOutcome =
  | { kind: "none-registered" }
  | { kind: "all-quiesced" }
  | { kind: "refused"; refused: Array<{ stack: string; reason: string }>; pending: string[] }
  | { kind: "timed-out"; pending: string[] };

const pendingOf = (stacks: readonly StackStatus[]) =>
  stacks.filter((s) => s.state === StackState.STACK_STATE_PENDING).map((s) => s.stack);

/** The outcome so far, or undefined while the barrier still waits. */
export function evaluateBarrier(stacks: readonly StackStatus[]): BarrierOutcome | undefined {
  if (stacks.length === 0) return { kind: "none-registered" };
  const refused = stacks.filter((s) => s.state === StackState.STACK_STATE_REFUSED);
  if (refused.length > 0) {
    return { kind: "refused", refused: refused.map((s) => ({ stack: s.stack, reason: s.reason })), pending: pendingOf(stacks) };
  }
  const quiet = (s: StackStatus) => s.state === StackState.STACK_STATE_QUIESCED || s.state === StackState.STACK_STATE_LEFT_STOPPED;
  if (stacks.every(quiet)) return { kind: "all-quiesced" };
  return undefined;
}

export interface BarrierWait {
  jobId: string;
  store: JobStore;
  bus: EventBus;
  clock: Clock;
  timeoutMs: number;
  signal: AbortSignal;
}

/** Resolves with the barrier's outcome; rejects with the signal's reason when it aborts. */
export function waitForBarrier(w: BarrierWait): Promise<BarrierOutcome> {
  return new Promise<BarrierOutcome>((resolve, reject) => {
    if (w.signal.aborted) {
      reject(w.signal.reason);
      return;
    }
    const timer = new AbortController();
    let settled = false;
    const finish = (settle: () => void) => {
      if (settled) return;
      settled = true;
      unsubscribe();
      timer.abort();
      w.signal.removeEventListener("abort", onAbort);
      settle();
    };
    const check = () => {
      const job = w.store.getJob(w.jobId);
      if (!job) return finish(() => reject(new LullError("LULL_E_JOB_NOT_FOUND", `job ${w.jobId} does not exist`)));
      if (isTerminal(job.phase)) {
        return finish(() => reject(new LullError("LULL_E_JOB_TERMINAL", `job ${w.jobId} ended (${phaseName(job.phase)}) while quiescing`)));
      }
      const outcome = evaluateBarrier(job.stacks);
      if (outcome) finish(() => resolve(outcome));
    };
    const onAbort = () => finish(() => reject(w.signal.reason));
    // The acknowledgements that share one commit arrive as one published batch: one look after it.
    let looking = false;
    const lookAgain = () => {
      if (looking || settled) return;
      looking = true;
      queueMicrotask(() => {
        looking = false;
        if (!settled) check();
      });
    };
    const unsubscribe = w.bus.subscribe({ jobId: w.jobId }, lookAgain);
    w.signal.addEventListener("abort", onAbort, { once: true });
    w.clock.sleep(w.timeoutMs, timer.signal).then(
      () => finish(() => resolve({ kind: "timed-out", pending: pendingOf(w.store.getJob(w.jobId)?.stacks ?? []) })),
      () => {},
    );
    check();
  });
}

export interface BarrierDecision {
  /** Events that close the barrier (and fail the job under the `fail` policy), committed together. */
  events: JobEvent[];
  consistency: Consistency;
  /** Set when the job failed: the engine must not go on. */
  error?: LullError;
}

/** A stack still registered whose controller let its lease run out (unreachable): not in the barrier. */
export interface LapsedStack {
  stack: string;
  leaseExpiredAt: number;
}

/** How long after its lease ran out a registered stack still counts as a stack of the guest. */
export const LAPSED_STACK_HORIZON_MS = 7 * 24 * 3_600_000;

const lapsedText = (lapsed: readonly LapsedStack[]) =>
  lapsed.map((l) => `${l.stack} (its controller's lease ran out at ${new Date(l.leaseExpiredAt).toISOString()})`).join(", ");

/**
 * What the barrier's outcome means under the job's policy. Stacks whose lease lapsed could not be
 * asked, so a barrier that every asked stack passed is still only crash-consistent: the job says so
 * and names them, rather than claiming APP.
 */
export function decideBarrier(outcome: BarrierOutcome, policy: QuiescePolicy, timeoutMs: number, lapsed: readonly LapsedStack[] = []): BarrierDecision {
  const CRASH = Consistency.CONSISTENCY_CRASH;
  switch (outcome.kind) {
    case "all-quiesced":
      if (lapsed.length > 0) {
        const note = `crash-consistent: not quiesced: ${lapsedText(lapsed)}`;
        return { events: [{ type: "barrier-ended", consistency: CRASH, timedOut: false, note }], consistency: CRASH };
      }
      return { events: [{ type: "barrier-ended", consistency: Consistency.CONSISTENCY_APP, timedOut: false }], consistency: Consistency.CONSISTENCY_APP };
    case "none-registered": {
      const note = lapsed.length > 0 ? `no stack could be asked: ${lapsedText(lapsed)}` : "no stacks registered";
      return { events: [{ type: "barrier-ended", consistency: CRASH, timedOut: false, note }], consistency: CRASH };
    }
    case "refused":
    case "timed-out": {
      const refused = outcome.kind === "refused" ? outcome.refused : [];
      const what = [
        ...refused.map((r) => `${r.stack} (refused: ${r.reason || "no reason given"})`),
        ...outcome.pending.map((s) => `${s} (${outcome.kind === "timed-out" ? "no acknowledgement within " + timeoutMs + " ms" : "still pending"})`),
        ...(lapsed.length > 0 ? [lapsedText(lapsed)] : []),
      ].join(", ");
      const timedOut = outcome.kind === "timed-out";
      if (policy === QuiescePolicy.QUIESCE_POLICY_CRASH_CONSISTENT) {
        const note = `crash-consistent: not quiesced: ${what}`;
        return { events: [{ type: "barrier-ended", consistency: CRASH, timedOut, note }], consistency: CRASH };
      }
      const error = timedOut
        ? new LullError("LULL_E_QUIESCE_TIMEOUT", `not every stack acknowledged within ${timeoutMs} ms: ${what}`)
        : new LullError("LULL_E_QUIESCE_REFUSED", `quiesce refused: ${what}`);
      return {
        events: [
          { type: "barrier-ended", consistency: CRASH, timedOut },
          { type: "fail", code: error.code, message: error.message },
        ],
        consistency: CRASH,
        error,
      };
    }
  }
}
