// The group run state machine: a pure function (run, event, now) → { run, effects }. The ledger
// (ledger/ledger.ts) persists the new run and the GROUP events in `effects` in one transaction,
// then publishes them; nothing else changes a group run.
//
//   queued ─▶ quiescing ─▶ snapshotting ─▶ snapshotted ─▶ archiving ─▶ done
//                                │                           ▲
//                                └── (no member makes a copy) ┘
//
//   any non-terminal phase ─▶ failed (once every member job has ended and one is not done)
//   any non-terminal phase ─▶ cancelled (an operator cancelled the run, and every member that is
//                             not done ended cancelled)
//
// `quiescing` lasts until every stack of every member acknowledged (or the policy went on
// crash-consistent): then `barrier-passed` records the group's consistency. `snapshot-point` is
// the moment every member's copy exists (snapshot_at = the earliest). `failing` records the first
// cause of a failure before that point (the phase stays until every member has ended); `cancel`
// records an operator's cancel the same way (code LULL_E_CANCELLED; a cause already recorded
// stays the cause); `end` settles the run from its members' outcomes: `done` only if every member
// is done, `cancelled` when the recorded cause is the cancel and every other member was cancelled.
// What makes a run `cancelled` is durable (the run's cause, the members' phases), so start-up
// recovery settles a cancel the agent's stop interrupted from the same rows.
import { Consistency, Phase } from "@lull/proto";
import { LullError, isTerminal, phaseName, type ErrorCode } from "@lull/shared";
import type { Effect } from "../ledger/ledger.js";
import { leavePhase, type PhaseDurations } from "../ledger/phase-time.js";
import { groupEvent, type GroupRunRecord } from "./group-run.js";

export type GroupEvent =
  | { type: "start" }
  | { type: "barrier-passed"; consistency: Consistency; at: number }
  | { type: "snapshot-point"; snapshotAt: number | undefined; skew?: string }
  | { type: "archiving" }
  | { type: "failing"; code: ErrorCode | string; message: string }
  | { type: "cancel"; reason: string }
  | { type: "end"; failedGuests: readonly string[]; code: string; message: string; cancelled: boolean };

export type GroupEffect = Effect;

export interface GroupTransition {
  run: GroupRunRecord;
  effects: GroupEffect[];
}

const P = Phase;
/** The code of a run an operator cancelled (as of a cancelled job). */
export const CANCELLED_CODE = "LULL_E_CANCELLED";

function wrongPhase(run: GroupRunRecord, event: GroupEvent): LullError {
  return new LullError("LULL_E_WRONG_PHASE", `group run ${run.id} cannot take ${event.type} while ${phaseName(run.phase)}`);
}

/** What the time in each phase counts toward: a run archives from the moment its members' snapshots exist. */
const DURATIONS: PhaseDurations = {
  [P.PHASE_QUIESCING]: "quiesceMs",
  [P.PHASE_SNAPSHOTTING]: "snapshotMs",
  [P.PHASE_SNAPSHOTTED]: "archiveMs",
  [P.PHASE_ARCHIVING]: "archiveMs",
};

function phaseChange(run: GroupRunRecord, to: Phase, now: number, patch: Partial<GroupRunRecord>, message: string): GroupTransition {
  const next = { ...leavePhase(run, to, now, DURATIONS), ...patch };
  return {
    run: next,
    effects: [
      { type: "phase-changed", from: run.phase, to },
      { type: "emit", event: groupEvent(next, { message }) },
    ],
  };
}

const consistencyWord = (c: Consistency) => (c === Consistency.CONSISTENCY_APP ? "app-consistent" : "crash-consistent");

/** The one transition function of group runs. Throws LULL_E_JOB_TERMINAL / LULL_E_WRONG_PHASE. */
export function groupTransition(run: GroupRunRecord, event: GroupEvent, now: number): GroupTransition {
  if (isTerminal(run.phase)) {
    throw new LullError("LULL_E_JOB_TERMINAL", `group run ${run.id} has already ended (${phaseName(run.phase)})`);
  }
  switch (event.type) {
    case "start":
      if (run.phase !== P.PHASE_QUEUED) throw wrongPhase(run, event);
      return phaseChange(run, P.PHASE_QUIESCING, now, {}, `quiescing every stack of ${run.guestIds.join(", ")} behind one barrier`);
    case "barrier-passed":
      if (run.phase !== P.PHASE_QUIESCING) throw wrongPhase(run, event);
      return phaseChange(
        run,
        P.PHASE_SNAPSHOTTING,
        now,
        { consistency: event.consistency, quiescedAt: new Date(event.at) },
        `every member's barrier ended (${consistencyWord(event.consistency)}); taking every snapshot`,
      );
    case "snapshot-point":
      if (run.phase !== P.PHASE_SNAPSHOTTING) throw wrongPhase(run, event);
      return phaseChange(
        run,
        P.PHASE_SNAPSHOTTED,
        now,
        { snapshotAt: event.snapshotAt === undefined ? undefined : new Date(event.snapshotAt) },
        `every member's snapshot exists; stacks may resume${event.skew ? `; ${event.skew}` : ""}`,
      );
    case "archiving":
      if (run.phase !== P.PHASE_SNAPSHOTTED && run.phase !== P.PHASE_SNAPSHOTTING) throw wrongPhase(run, event);
      return phaseChange(run, P.PHASE_ARCHIVING, now, {}, "members archive on their own");
    case "failing": {
      if (run.errorCode !== "") return { run, effects: [] };
      const next: GroupRunRecord = { ...run, errorCode: event.code, errorMessage: event.message, failedIn: run.phase, updatedAt: new Date(now) };
      return { run: next, effects: [{ type: "emit", event: groupEvent(next, { message: `failing: ${event.message}` }) }] };
    }
    case "cancel": {
      if (run.errorCode !== "") {
        // The first cause stays the cause; watchers still see that the cancel was asked for.
        const message =
          run.errorCode === CANCELLED_CODE
            ? `cancel requested again: ${event.reason}`
            : `cancel requested; the run already ends for an earlier cause (${run.errorCode}): ${event.reason}`;
        return { run, effects: [{ type: "emit", event: groupEvent(run, { message }) }] };
      }
      const next: GroupRunRecord = { ...run, errorCode: CANCELLED_CODE, errorMessage: event.reason, failedIn: run.phase, updatedAt: new Date(now) };
      return { run: next, effects: [{ type: "emit", event: groupEvent(next, { message: `cancelling: ${event.reason}` }) }] };
    }
    case "end": {
      if (event.failedGuests.length === 0) {
        if (run.phase !== P.PHASE_SNAPSHOTTED && run.phase !== P.PHASE_ARCHIVING) throw wrongPhase(run, event);
        // A cancel that came too late (every member had finished its archive) leaves no error on a done run.
        const clean = { failedGuests: [], failedIn: P.PHASE_UNSPECIFIED, errorCode: "", errorMessage: "" };
        return phaseChange(run, P.PHASE_DONE, now, clean, `every member is done (${consistencyWord(run.consistency)})`);
      }
      const failedIn = run.failedIn !== P.PHASE_UNSPECIFIED ? run.failedIn : run.phase;
      const errorCode = run.errorCode || event.code;
      return phaseChange(
        run,
        event.cancelled ? P.PHASE_CANCELLED : P.PHASE_FAILED,
        now,
        { failedIn, errorCode, errorMessage: event.message, failedGuests: [...event.failedGuests] },
        event.message,
      );
    }
  }
}
