// The short outcome of the steps run at resume (sessions ended, post commands), as the controller
// reports it to the agent (ReportResumed.post_step, shown by `lullctl job`):
//   ok: pg (35 ms), notify (12 ms)
//   failed: pg: the session ended before resume (psql: exit 2: …); ok: notify (12 ms)
// One line, at most POST_STEP_MAX characters (the agent refuses longer or multi-line text).

export interface StepOutcome {
  name: string;
  ok: boolean;
  durationMs: number;
  /** Why it failed. */
  error?: string | undefined;
}

export const POST_STEP_MAX = 1_000;

function oneLine(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\x00-\x1f\x7f]+/g, " ").trim();
}

/** The outcome line; undefined when no step ran. */
export function summarizeOutcomes(outcomes: readonly StepOutcome[]): string | undefined {
  if (outcomes.length === 0) return undefined;
  const ok = outcomes.filter((o) => o.ok).map((o) => `${o.name} (${Math.round(o.durationMs)} ms)`);
  const failed = outcomes.filter((o) => !o.ok).map((o) => `${o.name}: ${o.error ?? "failed"}`);
  const text = failed.length === 0 ? `ok: ${ok.join(", ")}` : `failed: ${failed.join("; ")}${ok.length > 0 ? `; ok: ${ok.join(", ")}` : ""}`;
  const line = oneLine(text);
  return line.length <= POST_STEP_MAX ? line : `${line.slice(0, POST_STEP_MAX - 1)}…`;
}

/** A refusal's reason with the outcome of the steps that ran afterwards. */
export function withPostOutcome(reason: string, postStep: string | undefined): string {
  return postStep === undefined ? reason : `${reason}; post steps: ${postStep}`;
}
