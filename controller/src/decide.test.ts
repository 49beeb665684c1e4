// Table tests of the controller's decisions: every phase × stack state × resume mode that matters.
import assert from "node:assert/strict";
import { test } from "node:test";
import { Job, Phase, SnapshotMode, StackState } from "@lull/proto";
import { decideForJob, decideForMarker, snapshotExists, type JobView } from "./decide.js";
import type { Marker } from "./marker-store.js";

const P = Phase;
const S = StackState;
const NOW = 1_000_000;
const marker: Marker = { jobId: "j1", guestId: "demo", stack: "app", agent: "a", controllerId: "c", stoppedAt: NOW - 1_000, resumeDeadline: NOW + 10_000, resumeAt: NOW + 8_000 };

function job(phase: Phase, state?: StackState, extra: Partial<Job> = {}): Job {
  return Job.fromPartial({ id: "j1", guestId: "demo", phase, mode: SnapshotMode.SNAPSHOT_MODE_SNAPSHOT, stacks: state === undefined ? [] : [{ stack: "app", state }], ...extra });
}
const found = (j: Job): JobView => ({ kind: "found", job: j });

test("decideForMarker: the table", () => {
  const rows: Array<[string, JobView, "early" | "end", string]> = [
    ["quiescing, PENDING", found(job(P.PHASE_QUIESCING, S.STACK_STATE_PENDING)), "early", "stop-and-acknowledge"],
    ["quiescing, QUIESCED", found(job(P.PHASE_QUIESCING, S.STACK_STATE_QUIESCED)), "early", "hold"],
    ["quiescing, REFUSED", found(job(P.PHASE_QUIESCING, S.STACK_STATE_REFUSED)), "early", "resume:released"],
    ["quiescing, TIMED_OUT", found(job(P.PHASE_QUIESCING, S.STACK_STATE_TIMED_OUT)), "early", "resume:released"],
    ["quiescing, not in the barrier", found(job(P.PHASE_QUIESCING)), "early", "resume:released"],
    ["snapshotting, QUIESCED", found(job(P.PHASE_SNAPSHOTTING, S.STACK_STATE_QUIESCED)), "early", "hold"],
    ["snapshotting, TIMED_OUT (crash-consistent)", found(job(P.PHASE_SNAPSHOTTING, S.STACK_STATE_TIMED_OUT)), "early", "resume:released"],
    ["snapshotted", found(job(P.PHASE_SNAPSHOTTED, S.STACK_STATE_QUIESCED)), "early", "resume:snapshotted:early"],
    ["snapshotted, resume: end", found(job(P.PHASE_SNAPSHOTTED, S.STACK_STATE_QUIESCED)), "end", "hold"],
    ["archiving after a snapshot", found(job(P.PHASE_ARCHIVING, S.STACK_STATE_QUIESCED, { snapshotAt: new Date(NOW) })), "early", "resume:snapshotted:early"],
    ["archiving in place (mode none)", found(job(P.PHASE_ARCHIVING, S.STACK_STATE_QUIESCED, { mode: SnapshotMode.SNAPSHOT_MODE_NONE })), "early", "hold"],
    ["archiving, vzdump stop mode", found(job(P.PHASE_ARCHIVING, S.STACK_STATE_QUIESCED, { mode: SnapshotMode.SNAPSHOT_MODE_STOP })), "early", "hold"],
    ["archiving after a snapshot, resume: end", found(job(P.PHASE_ARCHIVING, S.STACK_STATE_QUIESCED, { snapshotAt: new Date(NOW) })), "end", "hold"],
    ["done", found(job(P.PHASE_DONE, S.STACK_STATE_QUIESCED, { snapshotAt: new Date(NOW) })), "early", "resume:terminal"],
    ["done, resume: end", found(job(P.PHASE_DONE, S.STACK_STATE_QUIESCED)), "end", "resume:terminal"],
    ["failed", found(job(P.PHASE_FAILED, S.STACK_STATE_QUIESCED)), "early", "resume:terminal"],
    ["cancelled", found(job(P.PHASE_CANCELLED, S.STACK_STATE_PENDING)), "early", "resume:terminal"],
    ["queued (cannot hold a marker)", found(job(P.PHASE_QUEUED)), "early", "resume:released"],
    ["unknown job", { kind: "not-found", reason: "LULL_E_JOB_NOT_FOUND" }, "early", "resume:unknown-job"],
    ["agent unreachable", { kind: "unreachable", reason: "down" }, "early", "hold"],
    ["agent error (not an unknown job)", { kind: "agent-error", reason: "LULL_E_INTERNAL: boom" }, "early", "hold"],
  ];
  for (const [name, view, resume, want] of rows) {
    const d = decideForMarker({ marker, view, now: NOW, deadlineFired: false, resume, stack: "app" });
    const got = d.action === "resume" ? `resume:${d.cause}${d.early ? ":early" : ""}` : d.action;
    assert.equal(got, want, name);
  }
});

test("decideForMarker: past the deadline the stack resumes whatever the agent says", () => {
  const views: JobView[] = [
    { kind: "unreachable", reason: "down" },
    { kind: "agent-error", reason: "LULL_E_PERMISSION_DENIED: no" },
    found(job(P.PHASE_QUIESCING, S.STACK_STATE_QUIESCED)),
    found(job(P.PHASE_SNAPSHOTTING, S.STACK_STATE_QUIESCED)),
    found(job(P.PHASE_SNAPSHOTTED, S.STACK_STATE_QUIESCED)),
  ];
  for (const view of views) {
    for (const [now, fired] of [[marker.resumeAt, false], [marker.resumeAt + 5, false], [marker.resumeDeadline, false], [marker.resumeAt - 1, true]] as const) {
      const d = decideForMarker({ marker, view, now, deadlineFired: fired, resume: "end", stack: "app" });
      assert.deepEqual(d, { action: "resume", cause: "deadline", early: false });
    }
  }
});

test("decideForJob: the table", () => {
  const rows: Array<[string, Job, string | undefined, boolean, string]> = [
    ["quiescing, PENDING, nothing tracked", job(P.PHASE_QUIESCING, S.STACK_STATE_PENDING), undefined, false, "quiesce"],
    ["quiescing, PENDING, previous job not ended", job(P.PHASE_QUIESCING, S.STACK_STATE_PENDING), "j0", false, "refuse"],
    ["quiescing, PENDING, already resumed for it", job(P.PHASE_QUIESCING, S.STACK_STATE_PENDING), "j1", true, "refuse"],
    ["quiescing, QUIESCED, not tracked", job(P.PHASE_QUIESCING, S.STACK_STATE_QUIESCED), undefined, false, "track"],
    ["archiving, RESUMED, tracked", job(P.PHASE_ARCHIVING, S.STACK_STATE_RESUMED), "j1", true, "ignore"],
    ["done, tracked", job(P.PHASE_DONE, S.STACK_STATE_RESUMED), "j1", true, "done"],
    ["failed, tracked", job(P.PHASE_FAILED, S.STACK_STATE_RESUMED), "j1", true, "done"],
    ["done, not tracked", job(P.PHASE_DONE, S.STACK_STATE_RESUMED), undefined, false, "ignore"],
    ["quiescing without this stack", job(P.PHASE_QUIESCING), undefined, false, "ignore"],
  ];
  for (const [name, j, trackedJobId, trackedResumed, want] of rows) {
    assert.equal(decideForJob({ job: j, stack: "app", trackedJobId, trackedResumed }).action, want, name);
  }
});

test("snapshotExists only after the point-in-time copy and never for modes without one", () => {
  assert.equal(snapshotExists(job(P.PHASE_SNAPSHOTTING)), false);
  assert.equal(snapshotExists(job(P.PHASE_SNAPSHOTTED)), true);
  assert.equal(snapshotExists(job(P.PHASE_SNAPSHOTTED, undefined, { mode: SnapshotMode.SNAPSHOT_MODE_COPY })), true);
  assert.equal(snapshotExists(job(P.PHASE_ARCHIVING, undefined, { mode: SnapshotMode.SNAPSHOT_MODE_UNSPECIFIED })), false);
  assert.equal(snapshotExists(job(P.PHASE_ARCHIVING, undefined, { mode: SnapshotMode.SNAPSHOT_MODE_SUSPEND, snapshotAt: new Date() })), false);
});
