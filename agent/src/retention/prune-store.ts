// The SQL of retention, on the job store's connection. `prunableUnits` lists what the policy lets
// go, as units deleted together: one ended job outside any group run, or a whole consistency group
// run (every member job and the run's own rows) once the run has ended and every member may go.
// `deleteUnits` deletes units in one transaction, with every row that belongs to them: the events
// and the rows of every other table with a `job_id` column (job_stacks and any a later migration
// adds), the run's rows in every table with a `group_run_id` column; and it raises the
// `pruned_events` watermarks, so WatchEvents can tell a watcher that events before them are gone.
// Event numbers are never reused (AUTOINCREMENT), so sequence numbers stay monotonic.
import type { Database as Db, Statement } from "better-sqlite3";
import { LullError } from "@lull/shared";
import type { JobStore } from "../jobs/store.js";
import { PRUNED_ANY_GUEST } from "../ledger/event-log.js";
import type { RetentionPolicy } from "./config.js";

const ENDED = "('done', 'failed', 'cancelled')";

export interface PruneUnit {
  jobIds: string[];
  /** Set when the unit is a whole consistency group run. */
  groupRunId?: string;
  /** Events the unit holds (to bound a batch). */
  events: number;
}

export interface PruneCounts {
  jobs: number;
  groupRuns: number;
  events: number;
  /** Rows of the other child tables (job_stacks, …). */
  otherRows: number;
}

interface Candidate {
  id: string;
  group_run_id: string;
  events: number;
}

const quoteName = (name: string) => `"${name.replace(/"/g, '""')}"`;

/** Tables (other than `exclude`) that have the column `column`. */
/** Tables that name a job but outlive job history: the restore points (`backups`) stay when their job goes. */
const OUTLIVE_JOBS = ["backups"];

function tablesWithColumn(db: Db, column: string, exclude: readonly string[]): string[] {
  const tables = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name").all() as Array<{ name: string }>;
  return tables
    .map((t) => t.name)
    .filter((name) => !exclude.includes(name))
    .filter((name) => (db.pragma(`table_info(${quoteName(name)})`) as Array<{ name: string }>).some((c) => c.name === column));
}

export class PruneStore {
  private readonly db: Db;
  private readonly stmt: Record<string, Statement>;
  /** DELETE … WHERE job_id IN (json array), per child table; events among them. */
  private readonly jobChildren: Array<{ table: string; delete: Statement }>;
  private readonly runChildren: Array<{ table: string; delete: Statement }>;

  constructor(private readonly jobs: JobStore) {
    const db = (this.db = jobs.connection);
    const ids = "(SELECT value FROM json_each(?))";
    this.jobChildren = tablesWithColumn(db, "job_id", ["jobs", ...OUTLIVE_JOBS]).map((table) => ({
      table,
      delete: db.prepare(`DELETE FROM ${quoteName(table)} WHERE job_id IN ${ids}`),
    }));
    this.runChildren = tablesWithColumn(db, "group_run_id", ["jobs", "group_runs", ...OUTLIVE_JOBS]).map((table) => ({
      table,
      delete: db.prepare(`DELETE FROM ${quoteName(table)} WHERE group_run_id = ?`),
    }));
    this.stmt = {
      candidates: db.prepare(
        `WITH ended AS (
           SELECT id, guest_id, group_run_id, COALESCE(finished_at, updated_at) AS ended_at,
                  ROW_NUMBER() OVER (PARTITION BY guest_id ORDER BY created_at DESC, id DESC) AS newest
           FROM jobs WHERE phase IN ${ENDED}
         )
         SELECT id, group_run_id, (SELECT COUNT(*) FROM events WHERE events.job_id = ended.id) AS events
         FROM ended WHERE newest > ? AND ended_at < ?
           -- a guest vzdump shut down and the crash cleanup has not settled yet: its record stays
           AND NOT EXISTS (SELECT 1 FROM vzdump_shutdowns s WHERE s.job_id = ended.id AND s.restarted_at IS NULL AND s.settled_at IS NULL)
         ORDER BY ended_at, id`,
      ),
      run: db.prepare(
        `SELECT phase IN ${ENDED} AS ended,
                (SELECT COUNT(*) FROM jobs WHERE jobs.group_run_id = group_runs.id) AS members,
                (SELECT COUNT(*) FROM events WHERE events.job_id = '' AND events.group_run_id = group_runs.id) AS events
         FROM group_runs WHERE id = ?`,
      ),
      lastSeqs: db.prepare(
        `SELECT guest_id, MAX(seq) AS seq FROM events
         WHERE job_id IN ${ids} OR (? <> '' AND job_id = '' AND group_run_id = ?) GROUP BY guest_id`,
      ),
      raiseWatermark: db.prepare(
        `INSERT INTO pruned_events (scope, through_seq) VALUES (?, ?)
         ON CONFLICT (scope) DO UPDATE SET through_seq = MAX(through_seq, excluded.through_seq)`,
      ),
      deleteJobs: db.prepare(`DELETE FROM jobs WHERE id IN ${ids} AND phase IN ${ENDED}`),
      deleteRun: db.prepare(`DELETE FROM group_runs WHERE id = ? AND phase IN ${ENDED}`),
    };
  }

  /** What the policy lets go at `now`, oldest first. Jobs that have not ended are never listed. */
  prunableUnits(policy: RetentionPolicy, now: number): PruneUnit[] {
    const candidates = this.stmt.candidates!.all(policy.keepLast, now - policy.maxAgeMs) as Candidate[];
    const units: PruneUnit[] = [];
    const runs = new Map<string, Candidate[]>();
    for (const c of candidates) {
      if (c.group_run_id === "") units.push({ jobIds: [c.id], events: c.events });
      else runs.set(c.group_run_id, [...(runs.get(c.group_run_id) ?? []), c]);
    }
    for (const [runId, members] of runs) {
      const run = this.stmt.run!.get(runId) as { ended: number; members: number; events: number } | undefined;
      // A run goes with its last member: only when it has ended and every member may go now.
      if (!run || run.ended !== 1 || run.members !== members.length) continue;
      units.push({ jobIds: members.map((m) => m.id), groupRunId: runId, events: run.events + members.reduce((n, m) => n + m.events, 0) });
    }
    return units;
  }

  /** Deletes the units and everything that belongs to them, in one transaction. */
  deleteUnits(units: readonly PruneUnit[]): PruneCounts {
    return this.jobs.transaction(() => {
      const counts: PruneCounts = { jobs: 0, groupRuns: 0, events: 0, otherRows: 0 };
      for (const unit of units) this.deleteUnit(unit, counts);
      return counts;
    });
  }

  private deleteUnit(unit: PruneUnit, counts: PruneCounts): void {
    const ids = JSON.stringify(unit.jobIds);
    const runId = unit.groupRunId ?? "";
    const seqs = this.stmt.lastSeqs!.all(ids, runId, runId) as Array<{ guest_id: string; seq: number }>;
    for (const { guest_id, seq } of seqs) {
      this.stmt.raiseWatermark!.run(PRUNED_ANY_GUEST, seq);
      if (guest_id !== "") this.stmt.raiseWatermark!.run(guest_id, seq);
    }
    for (const child of this.jobChildren) {
      const n = child.delete.run(ids).changes;
      if (child.table === "events") counts.events += n;
      else counts.otherRows += n;
    }
    if (runId !== "") {
      for (const child of this.runChildren) {
        const n = child.delete.run(runId).changes;
        if (child.table === "events") counts.events += n;
        else counts.otherRows += n;
      }
      counts.groupRuns += this.stmt.deleteRun!.run(runId).changes;
    }
    const deleted = this.stmt.deleteJobs!.run(ids).changes;
    if (deleted !== unit.jobIds.length) {
      // A job of the unit has not ended (or is gone): roll the whole batch back rather than delete part of it.
      throw new LullError("LULL_E_INTERNAL", `retention: ${unit.jobIds.length - deleted} of jobs ${unit.jobIds.join(", ")} could not be deleted; nothing was`);
    }
    counts.jobs += deleted;
  }
}
