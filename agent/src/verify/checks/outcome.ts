/** What one check of one stack found on a replica. */
export interface CheckOutcome {
  ok: boolean;
  /** Why it failed, in words that name the problem; '' when it passed. */
  reason: string;
  durationMs: number;
  /** What the check saw: log excerpt, query results, timings (stored on the point). */
  evidence: Record<string, unknown>;
}
