// A verification run's phases, a pure machine (table test in machine.test.ts):
//
//   restoring ──▶ checking ──▶ tearing-down ──▶ passed | failed
//       │            │              ▲
//       └────────────┴──────────────┘  (any failure, timeout or cancel: tearing-down first)
//   interrupted (the agent died in any non-ended phase) ──▶ failed, its replica swept at start
//
// Every path goes through `tearing-down`: the replica never outlives its run. The outcome is fixed
// when teardown begins (`verdict`) and becomes the phase once teardown has ended.
export type VerifyPhase = "restoring" | "checking" | "tearing-down" | "passed" | "failed" | "cancelled";
export type Verdict = "passed" | "failed" | "cancelled";

export interface VerifyRecord {
  id: string;
  pointId: string;
  guestId: string;
  phase: VerifyPhase;
  startedAt: number;
  endedAt: number | undefined;
  restoreMs: number;
  checkMs: number;
  teardownMs: number;
  reason: string;
  /** Set on entering tearing-down: what the run ends as. */
  verdict: Verdict | undefined;
  results: StackResult[];
}

export interface StackResult {
  stack: string;
  check: string;
  ok: boolean;
  reason: string;
  durationMs: number;
  evidence: Record<string, unknown>;
}

export type VerifyEvent =
  | { type: "restored"; ms: number }
  | { type: "checked"; results: StackResult[]; ms: number }
  | { type: "failed"; reason: string }
  | { type: "cancelled"; reason: string }
  | { type: "torn-down"; ms: number }
  | { type: "interrupted" };

export const ENDED: readonly VerifyPhase[] = ["passed", "failed", "cancelled"];

export function newVerifyRecord(id: string, pointId: string, guestId: string, now: number): VerifyRecord {
  return { id, pointId, guestId, phase: "restoring", startedAt: now, endedAt: undefined, restoreMs: 0, checkMs: 0, teardownMs: 0, reason: "", verdict: undefined, results: [] };
}

/** The next record; an event that does not apply in the record's phase is an error of the caller. */
export function transition(record: VerifyRecord, event: VerifyEvent, now: number): VerifyRecord {
  const bad = () => new Error(`verification ${record.id}: event ${event.type} in phase ${record.phase}`);
  if (ENDED.includes(record.phase)) throw bad();
  switch (event.type) {
    case "restored":
      if (record.phase !== "restoring") throw bad();
      return { ...record, phase: "checking", restoreMs: event.ms };
    case "checked": {
      if (record.phase !== "checking") throw bad();
      const failed = event.results.filter((r) => !r.ok);
      const reason = failed.map((r) => `${r.stack}: ${r.reason}`).join("; ");
      return { ...record, phase: "tearing-down", checkMs: event.ms, results: event.results, verdict: failed.length ? "failed" : "passed", reason };
    }
    case "failed":
    case "cancelled":
      if (record.phase === "tearing-down") return { ...record, reason: record.reason || event.reason, verdict: record.verdict === "passed" ? "failed" : (record.verdict ?? event.type) };
      return { ...record, phase: "tearing-down", verdict: event.type, reason: event.reason };
    case "torn-down":
      if (record.phase !== "tearing-down") throw bad();
      return { ...record, phase: record.verdict ?? "failed", teardownMs: event.ms, endedAt: now };
    case "interrupted":
      return {
        ...record,
        phase: "failed",
        endedAt: now,
        verdict: "failed",
        reason: `the agent stopped during ${record.phase}; its replica was torn down at the next start${record.reason ? ` (${record.reason})` : ""}`,
      };
  }
}
