// Start-up recovery. A marker left by a previous run means the stack is (probably) down:
//   - its job is still before `snapshotted` (quiescing/snapshotting) and the deadline has not
//     passed → re-attach: hold the stack, acknowledge again if the agent still waits (checking the
//     stack's status first, so it is never stopped twice; a stack still running is stopped once);
//   - snapshotted or later, terminal, unknown job, corrupt marker, or the deadline passed (the agent
//     need not answer) → resume at once;
//   - the agent unreachable within the deadline → hold; the deadline timer resumes it in time.
// These are the loop's own decisions (./decide.ts) applied to the marker before anything else runs.
//
// Quiesce steps (./quiesce/quiescer.ts): a session pre step (psql in backup mode, mongosh) died with
// the crashed process, and its server-side state with it (PostgreSQL aborts a backup whose session
// ends; MongoDB's fsyncLock does NOT end with the session — undo it in a post step). So every
// resume here runs the user's post steps anyway and reports the lost sessions as failed in the
// job's post_step. A job still waiting for this stack is refused rather than re-attached when pre
// steps are configured: what they did before the crash cannot be vouched for, and they are never
// run twice.
import type { Logger } from "@lull/shared";
import type { MarkerStore } from "./marker-store.js";
import type { Reconciler } from "./reconcile.js";

export type RecoverOutcome = "clean" | "resumed" | "holding";

export interface RecoverParts {
  reconciler: Reconciler;
  markers: MarkerStore;
  log: Logger;
}

export async function recover(parts: RecoverParts, signal: AbortSignal): Promise<RecoverOutcome> {
  const { reconciler, markers, log } = parts;
  const found = markers.read();
  if (found.kind === "none") {
    log.debug({ path: markers.path }, "no marker at start");
    return "clean";
  }
  if (found.kind === "present") {
    const m = found.marker;
    log.warn(
      {
        jobId: m.jobId,
        stoppedAt: new Date(m.stoppedAt).toISOString(),
        resumeDeadline: new Date(m.resumeDeadline).toISOString(),
        resumeAt: new Date(m.resumeAt).toISOString(),
        previousControllerId: m.controllerId,
      },
      "marker found at start — the stack may be down",
    );
  }
  await reconciler.reconcile({ hints: [], poll: false }, signal);
  const outcome: RecoverOutcome = markers.read().kind === "none" ? "resumed" : "holding";
  log.info({ outcome, jobId: found.kind === "present" ? found.marker.jobId : null }, "recovered");
  return outcome;
}
