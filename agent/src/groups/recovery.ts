// Start-up recovery of group runs, after the interrupted jobs were settled (so every member of a
// run that had not ended has ended now): each run that had not ended is settled from its members
// like a live run would be — `done` only if every member is done, else `failed` naming the
// members that are not, with LULL_E_AGENT_RESTARTED as the cause when the agent's stop cut it
// short before every member ended. Its GROUP events are persisted, so watchers see the end.
// A run past its snapshot point whose members on other nodes had not ended (followRemote: the
// cluster part is on) is left open: those members go on alone on their nodes, and the coordinator
// follows them there once the cluster part started, then settles the run the same way.
import { Phase } from "@lull/proto";
import { isTerminal, phaseName, type Logger } from "@lull/shared";
import type { GroupLedger } from "./ledger.js";
import { groupOutcome } from "./outcome.js";

export interface SettledGroup {
  groupRunId: string;
  /** The phase the run was in when the agent stopped. */
  interruptedIn: string;
  /** `done`, `failed`, `cancelled` (an operator's cancel the stop interrupted), or `following` (left open, see SettleOptions). */
  outcome: string;
  failedGuests: string[];
}

export interface SettleOptions {
  /**
   * Runs past their snapshot point whose members on other nodes had not ended are left open, to be
   * followed on those nodes (GroupCoordinator.followInterrupted) rather than settled as unknown.
   */
  followRemote?: boolean;
}

export function settleInterruptedGroups(ledger: GroupLedger, log: Logger, options: SettleOptions = {}): SettledGroup[] {
  const settled: SettledGroup[] = [];
  for (const run of ledger.store.nonTerminalRuns()) {
    const interruptedIn = phaseName(run.phase);
    try {
      if (options.followRemote && pastPoint(run.phase) && openRemoteMembers(ledger, run.id).length > 0) {
        log.warn({ groupRunId: run.id, interruptedIn, members: openRemoteMembers(ledger, run.id).map((m) => m.guestId) }, "interrupted group run past its point: following its members on other nodes");
        settled.push({ groupRunId: run.id, interruptedIn, outcome: "following", failedGuests: [] });
        continue;
      }
      settled.push(settleGroupRun(ledger, run.id, log));
    } catch (err) {
      log.error({ groupRunId: run.id, err }, "could not settle an interrupted group run");
    }
  }
  return settled;
}

const pastPoint = (phase: Phase) => phase === Phase.PHASE_SNAPSHOTTED || phase === Phase.PHASE_ARCHIVING;

/** Members on other nodes whose job had not ended as last reported, and whose job id is known there. */
export function openRemoteMembers(ledger: GroupLedger, runId: string) {
  return ledger.store.remoteMembers(runId).filter((m) => !isTerminal(m.phase) && m.id !== "");
}

/** Settles one run the agent's stop interrupted, from its members as stored now. */
export function settleGroupRun(ledger: GroupLedger, runId: string, log: Logger): SettledGroup {
  const run = ledger.store.getRun(runId);
  if (!run) throw new Error(`no group run ${runId}`);
  const interruptedIn = phaseName(run.phase);
  const members = ledger.store.memberJobs(run.id);
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
  return { groupRunId: run.id, interruptedIn, outcome: phaseName(final.phase), failedGuests: [...final.failedGuests] };
}
