// Start-up recovery of group runs, after the interrupted jobs were settled (so every member of a
// run that had not ended has ended now): each run that had not ended is settled from its members
// like a live run would be — `done` only if every member is done, else `failed` naming the
// members that are not, with LULL_E_AGENT_RESTARTED as the cause when the agent's stop cut it
// short before every member ended. Its GROUP events are persisted, so watchers see the end.
import { Phase } from "@lull/proto";
import { isTerminal, phaseName, type Logger } from "@lull/shared";
import type { GroupLedger } from "./ledger.js";
import { groupOutcome } from "./outcome.js";

export interface SettledGroup {
  groupRunId: string;
  /** The phase the run was in when the agent stopped. */
  interruptedIn: string;
  /** `done`, `failed`, or `cancelled` (an operator's cancel the stop interrupted). */
  outcome: string;
  failedGuests: string[];
}

export function settleInterruptedGroups(ledger: GroupLedger, log: Logger): SettledGroup[] {
  const settled: SettledGroup[] = [];
  for (const run of ledger.store.nonTerminalRuns()) {
    const interruptedIn = phaseName(run.phase);
    const members = ledger.store.memberJobs(run.id);
    try {
      const unfinished = members.filter((m) => !isTerminal(m.phase)).map((m) => m.guestId);
      const restarted = members.some((m) => m.errorCode === "LULL_E_AGENT_RESTARTED") || unfinished.length > 0;
      if (restarted) {
        ledger.apply(run.id, {
          type: "failing",
          code: "LULL_E_AGENT_RESTARTED",
          message: `the agent stopped while the group run was ${interruptedIn}; settled at the next start`,
        });
      }
      const current = ledger.store.getRun(run.id) ?? run;
      const outcome = groupOutcome(current, members);
      // A run whose members all finished before the crash, but that was not yet marked so, is done.
      const ended =
        outcome.failedGuests.length === 0 && current.phase !== Phase.PHASE_SNAPSHOTTED && current.phase !== Phase.PHASE_ARCHIVING
          ? ledger.apply(run.id, { type: "archiving" })
          : current;
      const final = ledger.apply(ended.id, groupOutcome(ended, members));
      log.warn({ groupRunId: run.id, interruptedIn, outcome: phaseName(final.phase), failedGuests: final.failedGuests }, "interrupted group run settled");
      settled.push({ groupRunId: run.id, interruptedIn, outcome: phaseName(final.phase), failedGuests: [...final.failedGuests] });
    } catch (err) {
      log.error({ groupRunId: run.id, err }, "could not settle an interrupted group run");
    }
  }
  return settled;
}
