// Whether a guest's newest point is verified now (pure). Verification follows the newest point
// only: it runs for a point never verified, again when its pass is older than `outdatedAfter`
// (PBS's outdated-after), and after a failure only when `retryFailedAfter` is set and has passed.
// A run that ended — passed, failed, torn down after a crash — never starts another by itself, so
// there is no loop; a newer point is what starts the next one.
export interface LastVerification {
  phase: "passed" | "failed" | "cancelled" | "running";
  endedAt: number | undefined;
}

export interface VerifyDecisionInput {
  /** The guest's newest point that has at least one stack with a check, if any. */
  newestPointId: string | undefined;
  /** The newest verification run of that point. */
  last: LastVerification | undefined;
  now: number;
  outdatedAfterMs: number;
  /** 0: a failed verification is not retried. */
  retryFailedAfterMs: number;
}

export type VerifyDecision = { verify: true; pointId: string; why: string } | { verify: false; why: string };

export function decideVerification(input: VerifyDecisionInput): VerifyDecision {
  const { newestPointId: id, last, now } = input;
  if (id === undefined) return { verify: false, why: "no point with a checked stack" };
  if (last === undefined) return { verify: true, pointId: id, why: "never verified" };
  if (last.phase === "running") return { verify: false, why: "a verification is running" };
  const age = now - (last.endedAt ?? now);
  if (last.phase === "passed") {
    return age >= input.outdatedAfterMs ? { verify: true, pointId: id, why: "its verification is outdated" } : { verify: false, why: "verified" };
  }
  if (input.retryFailedAfterMs > 0 && age >= input.retryFailedAfterMs) return { verify: true, pointId: id, why: `retry after a ${last.phase} verification` };
  return { verify: false, why: `its verification ${last.phase}; retried only by policy or for a newer point` };
}
