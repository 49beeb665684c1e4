// The resume lead: how long before the resume deadline the controller starts the stack when nothing
// else has resumed it, so that the stack is running again *by* the deadline (DESIGN invariant 2),
// not merely starting at it.
//
//   lead = min(half the deadline window, max(configured lead, 2 × the longest resume measured + 250 ms))
//
// The configured lead (`resumeLeadMs`, default min(10 s, a quarter of the window)) is a floor; each
// resume is measured (start/unpause verified up, post steps included) and the last few are kept next
// to the marker (./resume-timing.ts), and a stack that takes longer gets a longer lead at its next
// backup, also after a restart of the controller. The lead is written into the marker as
// `resumeAt`, so a restarted controller keeps the same point.
export interface ResumeLeadConfig {
  resumeDeadlineMs: number;
  /** Explicit floor for the lead; undefined: min(10 s, a quarter of the window). */
  resumeLeadMs?: number | undefined;
}

/** Margin added to the doubled longest resume. */
export const LEAD_MARGIN_MS = 250;
const DEFAULT_LEAD_CAP_MS = 10_000;

export function defaultLeadMs(resumeDeadlineMs: number): number {
  return Math.min(DEFAULT_LEAD_CAP_MS, Math.floor(resumeDeadlineMs / 4));
}

/** The lead for the next marker, given the longest of the stack's recent resumes (if any). */
export function resumeLeadMs(config: ResumeLeadConfig, longestResumeMs: number | undefined): number {
  const floor = config.resumeLeadMs ?? defaultLeadMs(config.resumeDeadlineMs);
  const measured = longestResumeMs === undefined ? 0 : 2 * longestResumeMs + LEAD_MARGIN_MS;
  return Math.min(Math.floor(config.resumeDeadlineMs / 2), Math.max(floor, measured));
}
