// A restore run's phases, a pure machine (table test in machine.test.ts):
//
//   into a directory:  checking ──▶ extracting ──▶ placing ──▶ done
//   in place:          checking ──▶ extracting ──▶ holding ──▶ placing ──▶ done
//                      (extracting writes beside each volume's contents while the stacks run;
//                       holding: the restore's job stops them through their controllers)
//   to a guest:        restoring-guest ──▶ done
//   any failure or cancel before placing ──▶ failed | cancelled (the staging directory removed,
//                                             the target as it was)
//   placing: no way back — the point is fully checked and extracted beside the target;
//                       a cancel is refused, a crash is finished at the next start (`resumed`)
//   interrupted (the agent died in checking, extracting or restoring-guest) ──▶ failed
//
// `placing` replaces the target's contents (a directory's, or each volume's) with the staged copy
// in steps that a restart resumes (restorer.ts replaceContents), so a restart redoes it.
export type RestorePhase = "checking" | "extracting" | "holding" | "placing" | "restoring-guest" | "done" | "failed" | "cancelled";

export type RestoreTarget =
  /** `created`: the directory did not exist before this run (a failed run removes it again). */
  | { kind: "dir"; path: string; created: boolean }
  /** A native guest's own volumes; `jobId` is the job (kind restore) that holds its stacks stopped. */
  | { kind: "in-place"; jobId: string }
  /** `vmid` 0 until the next free id is known. */
  | { kind: "guest"; vmid: number; storage: string; start: boolean };

export interface RestoreRecord {
  id: string;
  pointId: string;
  guestId: string;
  target: RestoreTarget;
  force: boolean;
  phase: RestorePhase;
  startedAt: number;
  endedAt: number | undefined;
  bytesDone: number;
  bytesTotal: number;
  files: number;
  bytes: number;
  sha256: string;
  errorCode: string;
  reason: string;
  checkMs: number;
  extractMs: number;
  requestedBy: string;
}

export type RestoreEvent =
  | { type: "progress"; bytesDone: number; bytesTotal: number }
  | { type: "checked"; sha256: string; files: number; bytes: number; ms: number }
  /** Extracted beside the target; `clear`: the target holds entries to remove first. */
  | { type: "extracted"; ms: number }
  /** In place: every stack is stopped and held; the volumes are replaced next. */
  | { type: "held" }
  | { type: "placed" }
  | { type: "vmid"; vmid: number }
  | { type: "guest-restored"; vmid: number }
  | { type: "failed"; code: string; reason: string }
  | { type: "cancelled"; reason: string }
  /** The agent died in a phase before placing; `detail` says what the next start did about it. */
  | { type: "interrupted"; detail: string };

/** The target as one text (the `target` column and the API field): the directory, the holding job's id, or the vmid ("" until known). */
export function targetValue(t: RestoreTarget): string {
  if (t.kind === "dir") return t.path;
  if (t.kind === "in-place") return t.jobId;
  return t.vmid ? String(t.vmid) : "";
}

export const ENDED: readonly RestorePhase[] = ["done", "failed", "cancelled"];
/** Phases past the point of no return: the target is being replaced. */
export const COMMITTED: readonly RestorePhase[] = ["placing"];

export function newRestoreRecord(init: Pick<RestoreRecord, "id" | "pointId" | "guestId" | "target" | "force" | "requestedBy">, now: number): RestoreRecord {
  return {
    ...init,
    phase: init.target.kind === "guest" ? "restoring-guest" : "checking",
    startedAt: now,
    endedAt: undefined,
    bytesDone: 0,
    bytesTotal: 0,
    files: 0,
    bytes: 0,
    sha256: "",
    errorCode: "",
    reason: "",
    checkMs: 0,
    extractMs: 0,
  };
}

/** The next record; an event that does not apply in the record's phase is an error of the caller. */
export function transition(r: RestoreRecord, event: RestoreEvent, now: number): RestoreRecord {
  const bad = () => new Error(`restore ${r.id}: event ${event.type} in phase ${r.phase}`);
  if (ENDED.includes(r.phase)) throw bad();
  switch (event.type) {
    case "progress":
      return { ...r, bytesDone: event.bytesDone, bytesTotal: event.bytesTotal };
    case "checked":
      if (r.phase !== "checking") throw bad();
      return { ...r, phase: "extracting", sha256: event.sha256, files: event.files, bytes: event.bytes, checkMs: event.ms, bytesDone: 0 };
    case "extracted":
      if (r.phase !== "extracting") throw bad();
      return { ...r, phase: r.target.kind === "in-place" ? "holding" : "placing", extractMs: event.ms };
    case "held":
      if (r.phase !== "holding") throw bad();
      return { ...r, phase: "placing" };
    case "placed":
      if (r.phase !== "placing") throw bad();
      return { ...r, phase: "done", endedAt: now };
    case "vmid":
      if (r.phase !== "restoring-guest" || r.target.kind !== "guest") throw bad();
      return { ...r, target: { ...r.target, vmid: event.vmid } };
    case "guest-restored":
      if (r.phase !== "restoring-guest" || r.target.kind !== "guest") throw bad();
      return { ...r, phase: "done", endedAt: now, target: { ...r.target, vmid: event.vmid } };
    case "failed":
    case "cancelled":
      if (COMMITTED.includes(r.phase)) throw bad();
      return { ...r, phase: event.type, endedAt: now, errorCode: event.type === "failed" ? event.code : "LULL_E_CANCELLED", reason: event.reason };
    case "interrupted":
      if (COMMITTED.includes(r.phase)) throw bad();
      return {
        ...r,
        phase: "failed",
        endedAt: now,
        errorCode: "LULL_E_AGENT_RESTARTED",
        reason: `the agent stopped during ${r.phase}; ${event.detail}`,
      };
  }
}
