// The schedule actions wired to the agent's existing entry points. backup: a job per guest (the
// same record StartBackup makes) or a group run (StartGroupBackup's logic), with the idempotency
// key `schedule:<id>:<tick>` so even a retried tick never makes a second job; the run waits for
// the job(s) to end and fails when one did not end done. A cancelled tick (deadline, lease lost,
// shutdown) cancels its jobs. verify: the verifier's decision per guest (a newer point, or one
// whose verification is older than outdatedAfter), then its verification; prune: the point
// pruner per guest, which removes exactly what its dry run plans.
import { EventKind, Phase } from "@lull/proto";
import { LullError, isTerminal, phaseName, type Clock } from "@lull/shared";
import type { AgentConfig } from "../config.js";
import type { GroupHandlers } from "../api/group-handlers.js";
import type { GroupLedger } from "../groups/ledger.js";
import { newJobId } from "../jobs/job-id.js";
import { eventFor, newJobRecord } from "../jobs/job.js";
import type { JobLedger } from "../jobs/ledger.js";
import { quiesceSettings } from "../jobs/policy.js";
import type { JobRunner } from "../jobs/runner.js";
import type { PointPruner } from "../prune/prune.js";
import type { Verifier } from "../verify/verifier.js";
import type { RunContext, ScheduleAction } from "./engine.js";
import type { ScheduleConfig } from "./config.js";

/** The guests a schedule names: its list, its group's members, or every guest of this node. */
export function guestsOf(config: Readonly<AgentConfig>, s: ScheduleConfig): string[] {
  if (s.all) return config.guests.map((g) => g.id);
  if (s.group !== undefined) return config.groups.find((g) => g.id === s.group)?.guests ?? [];
  return s.guests;
}

/** verify: each guest's newest point when the verifier says it is due; fails if one failed. */
export function verifyAction(config: Readonly<AgentConfig>, verifier: Verifier): ScheduleAction {
  return async (ctx) => {
    const ids: string[] = [];
    const failed: string[] = [];
    for (const guestId of guestsOf(config, ctx.schedule)) {
      if (ctx.signal.aborted) throw ctx.signal.reason;
      if (!ctx.leaseValid()) throw new LullError("LULL_E_CANCELLED", "the cluster lease was lost");
      const d = verifier.decide(guestId);
      if (!d.verify) continue;
      const r = await verifier.verify(d.pointId, { signal: ctx.signal });
      ids.push(r.id);
      if (r.phase !== "passed") failed.push(`${guestId}: point ${d.pointId} ${r.phase}${r.reason ? ` (${r.reason})` : ""}`);
    }
    if (failed.length > 0) throw new LullError("LULL_E_COMMAND_FAILED", `verification failed: ${failed.join("; ")}`);
    return { ref: ids.join(",") };
  };
}

/** prune: each guest's points by its keep options; fails if a removal failed. */
export function pruneAction(config: Readonly<AgentConfig>, pruner: PointPruner): ScheduleAction {
  return async (ctx) => {
    const removed: string[] = [];
    const failures: string[] = [];
    for (const guestId of guestsOf(config, ctx.schedule)) {
      if (ctx.signal.aborted) throw ctx.signal.reason;
      if (!ctx.leaseValid()) throw new LullError("LULL_E_CANCELLED", "the cluster lease was lost");
      const r = await pruner.prune(guestId, ctx.signal);
      removed.push(...r.removed);
      failures.push(...r.failures.map((f) => `${f.id}: ${f.error}`));
    }
    if (failures.length > 0) throw new LullError("LULL_E_COMMAND_FAILED", `prune could not remove ${failures.length} point(s): ${failures.join("; ")}`);
    return { ref: removed.join(",") };
  };
}

export interface BackupActionDeps {
  config: Readonly<AgentConfig>;
  ledger: JobLedger;
  runner: JobRunner;
  groupLedger: GroupLedger;
  groupHandlers: GroupHandlers;
  clock: Clock;
  isShuttingDown: () => boolean;
  /** How often the run looks at its jobs. */
  pollMs?: number;
}

export const scheduleKey = (ctx: RunContext) => `schedule:${ctx.schedule.id}:${ctx.tickAt}`;

export function backupAction(d: BackupActionDeps): ScheduleAction {
  const poll = d.pollMs ?? 500;
  const sleep = (ms: number, signal: AbortSignal) =>
    new Promise<void>((resolve) => {
      const t = setTimeout(resolve, ms);
      signal.addEventListener("abort", () => { clearTimeout(t); resolve(); }, { once: true });
    });
  return async (ctx) => {
    if (d.isShuttingDown()) throw new LullError("LULL_E_SHUTTING_DOWN", "the agent is shutting down and takes no new backups");
    const s = ctx.schedule;
    const requestedBy = `schedule ${s.id}`;
    if (s.group !== undefined) {
      const { group } = await d.groupHandlers.startGroupBackup({
        groupId: s.group, guestIds: [], idempotencyKey: scheduleKey(ctx), policy: 0, quiesceTimeoutMs: 0, requestedBy,
      });
      const runId = group!.id;
      for (;;) {
        const run = d.groupLedger.store.getRun(runId);
        if (run && isTerminal(run.phase)) {
          if (run.phase !== Phase.PHASE_DONE) throw new LullError("LULL_E_GROUP_MEMBER_FAILED", `group run ${runId} ended ${phaseName(run.phase)}${run.errorMessage ? `: ${run.errorMessage}` : ""}`);
          return { ref: runId };
        }
        if (ctx.signal.aborted) {
          await d.groupHandlers.cancelGroup({ groupRunId: runId, reason: `schedule ${s.id}: ${String((ctx.signal.reason as Error)?.message ?? "cancelled")}` }).catch(() => undefined);
          throw ctx.signal.reason;
        }
        await sleep(poll, ctx.signal);
      }
    }
    const guestIds = s.all ? d.config.guests.map((g) => g.id) : s.guests;
    const jobIds: string[] = [];
    for (const guestId of guestIds) {
      const guest = d.config.guests.find((g) => g.id === guestId);
      if (!guest) throw new LullError("LULL_E_UNKNOWN_GUEST", `schedule ${s.id}: guest ${guestId} is not configured`);
      const now = d.clock.now();
      const record = newJobRecord({
        id: newJobId(now),
        guestId,
        engine: guest.engine,
        ...quiesceSettings(d.config, guest),
        idempotencyKey: `${scheduleKey(ctx)}:${guestId}`,
        requestedBy,
        now,
      });
      try {
        const { job, created } = d.ledger.create(record, eventFor(record, EventKind.EVENT_KIND_PHASE));
        if (created) d.runner.start(job);
        jobIds.push(job.id);
      } catch (err) {
        // Another backup of the guest is running: this guest's part of the tick fails, said so.
        if (err instanceof LullError && err.code === "LULL_E_GUEST_BUSY") throw new LullError("LULL_E_GUEST_BUSY", `schedule ${s.id}: guest ${guestId} is busy with another backup (${err.message})`);
        throw err;
      }
    }
    for (;;) {
      const jobs = jobIds.map((id) => d.ledger.store.getJob(id)!);
      if (jobs.every((j) => isTerminal(j.phase))) {
        const bad = jobs.filter((j) => j.phase !== Phase.PHASE_DONE);
        if (bad.length > 0) {
          throw new LullError(bad[0]!.errorCode as never || "LULL_E_INTERNAL", bad.map((j) => `job ${j.id} (${j.guestId}) ended ${phaseName(j.phase)}${j.errorMessage ? `: ${j.errorMessage}` : ""}`).join("; "));
        }
        return { ref: jobIds.join(",") };
      }
      if (ctx.signal.aborted) {
        const why = `schedule ${s.id}: ${String((ctx.signal.reason as Error)?.message ?? "cancelled")}`;
        await Promise.allSettled(jobs.filter((j) => !isTerminal(j.phase)).map((j) => d.runner.cancel(j.id, why)));
        throw ctx.signal.reason;
      }
      await sleep(poll, ctx.signal);
    }
  };
}
