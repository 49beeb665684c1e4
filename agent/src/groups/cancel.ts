// CancelGroup: an operator stops a group run as a whole. The cancel is recorded on the run first
// (durable intent, and a GROUP event its watchers see), then every member job that has not ended
// is cancelled through the runner, exactly as CancelJob cancels one job: its run's signal aborts,
// its engine releases what it took (a copy, a partial archive) in `finally`, and the job ends
// `cancelled`, which is what tells its controllers to start their stacks again when the job never
// reached `snapshotted`. Members are cancelled together, each bounded by the runner's cancel grace.
// Members on other nodes are cancelled by their own node (the coordinator's CANCEL word, before or
// after the point) and the call waits for their ends to be reported too, at most REMOTE_CANCEL_WAIT_MS.
// Once they all ended, the run is settled: `cancelled` (see outcome.ts), and returned.
import { isTerminal, LullError, phaseName, type Logger } from "@lull/shared";
import type { JobRunner } from "../jobs/runner.js";
import type { GroupCoordinator } from "./coordinator.js";
import type { GroupRunRecord } from "./group-run.js";
import type { GroupLedger } from "./ledger.js";

export interface GroupCancelDeps {
  groupLedger: GroupLedger;
  coordinator: GroupCoordinator;
  runner: Pick<JobRunner, "cancel">;
  log: Logger;
  /** How long the call waits for members on other nodes to report their end (default 9 s, below a client's usual 10 s deadline). */
  remoteWaitMs?: number;
}

export const REMOTE_CANCEL_WAIT_MS = 9_000;

function alreadyEnded(runId: string, run: GroupRunRecord | undefined): LullError {
  const how = run && isTerminal(run.phase) ? ` (${phaseName(run.phase)})` : ": every member job has ended";
  return new LullError("LULL_E_JOB_TERMINAL", `group run ${runId} has already ended${how}`);
}

/** The reason recorded on each member job a group cancel ends. */
export function memberCancelReason(runId: string, reason: string): string {
  return `group run ${runId} cancelled: ${reason}`;
}

/**
 * Cancels every member of a run that has not ended and returns the run once they did.
 * LULL_E_GROUP_NOT_FOUND for an unknown run; LULL_E_JOB_TERMINAL (as CancelJob) for one that has ended.
 */
export async function cancelGroupRun(deps: GroupCancelDeps, runId: string, reason: string): Promise<GroupRunRecord> {
  const store = deps.groupLedger.store;
  const run = store.getRun(runId);
  if (!run) throw new LullError("LULL_E_GROUP_NOT_FOUND", `no group run ${runId}`);
  if (isTerminal(run.phase)) throw alreadyEnded(runId, run);
  const open = store.memberJobs(runId).filter((m) => !isTerminal(m.phase));
  if (open.length === 0) {
    // Its members ended a moment ago and the run is about to be settled: settle it now, cancel nothing.
    throw alreadyEnded(runId, deps.coordinator.settle(runId));
  }
  // Members on other nodes are cancelled by their node, told by the coordinator (CANCEL).
  const memberReason = memberCancelReason(runId, reason);
  deps.coordinator.cancel(runId, reason, memberReason);
  deps.log.info({ groupRunId: runId, reason, jobs: open.map((m) => m.id) }, "group cancel requested");
  const local = new Set(store.localMemberJobs(runId).map((m) => m.id));
  await Promise.all(
    open.filter((m) => local.has(m.id)).map((member) =>
      deps.runner.cancel(member.id, memberReason).catch((err: unknown) => {
        // It ended on its own meanwhile (JOB_TERMINAL), or its end could not be recorded: the run settles from what is stored.
        const e = err instanceof LullError ? err : new LullError("LULL_E_INTERNAL", String(err));
        deps.log.warn({ groupRunId: runId, jobId: member.id, code: e.code, err: e.message }, "member not cancelled");
      }),
    ),
  );
  // Their nodes report the members' ends on the JoinGroupRun streams; bounded as a local member's cancel is.
  await deps.coordinator.remoteMembersEnded(runId, deps.remoteWaitMs ?? REMOTE_CANCEL_WAIT_MS);
  return deps.coordinator.settle(runId) ?? run;
}
