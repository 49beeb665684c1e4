// Group runs (`group_runs`, migration 4) in the agent's database, next to the jobs: a run and its
// member jobs are created in one transaction of the shared ledger, and its writes are fenced by the
// same epoch (a runner of an older agent start cannot overwrite what recovery decided).
import type { Statement } from "better-sqlite3";
import { Job } from "@lull/proto";
import { LullError } from "@lull/shared";
import type { JobRecord } from "../jobs/job.js";
import type { JobStore } from "../jobs/store.js";
import type { GroupRunRecord } from "./group-run.js";
import { GROUP_RUN_COLUMNS, groupRunFromRow, groupRunToRow, type GroupRunRow } from "./rows.js";

export interface ListGroupRunsQuery {
  /** Only runs with this member guest. */
  guestId?: string | undefined;
  activeOnly?: boolean;
  limit: number;
  /** Only runs older than this position (the last row of the previous page, api/page-token.ts). */
  before?: { createdAt: number; id: string } | undefined;
}

const ACTIVE = "phase NOT IN ('done', 'failed', 'cancelled')";

export class GroupStore {
  private readonly stmt: Record<string, Statement>;

  constructor(readonly jobs: JobStore) {
    const db = jobs.connection;
    this.stmt = {
      byId: db.prepare("SELECT * FROM group_runs WHERE id = ?"),
      byKey: db.prepare("SELECT * FROM group_runs WHERE idempotency_key = ?"),
      nonTerminal: db.prepare(`SELECT * FROM group_runs WHERE ${ACTIVE} ORDER BY created_at, id`),
      insert: db.prepare(`INSERT INTO group_runs (${GROUP_RUN_COLUMNS.join(", ")}) VALUES (${GROUP_RUN_COLUMNS.map((c) => "@" + c).join(", ")})`),
      update: db.prepare(
        `UPDATE group_runs SET ${GROUP_RUN_COLUMNS.filter((c) => c !== "id")
          .map((c) => `${c} = @${c}`)
          .join(", ")} WHERE id = @id AND epoch <= @epoch`,
      ),
      memberIds: db.prepare("SELECT id FROM jobs WHERE group_run_id = ? ORDER BY guest_id"),
      remote: db.prepare("SELECT job_json FROM group_remote_members WHERE group_run_id = ? ORDER BY member"),
      putRemote: db.prepare(
        "INSERT INTO group_remote_members (group_run_id, member, job_json, updated_at) VALUES (?, ?, ?, ?) ON CONFLICT (group_run_id, member) DO UPDATE SET job_json = excluded.job_json, updated_at = excluded.updated_at",
      ),
    };
  }

  get epoch(): number {
    return this.jobs.epoch;
  }

  getRun(id: string): GroupRunRecord | undefined {
    const row = this.stmt.byId!.get(id) as GroupRunRow | undefined;
    return row ? groupRunFromRow(row) : undefined;
  }

  runByKey(key: string): GroupRunRecord | undefined {
    const row = this.stmt.byKey!.get(key) as GroupRunRow | undefined;
    return row ? groupRunFromRow(row) : undefined;
  }

  nonTerminalRuns(): GroupRunRecord[] {
    return (this.stmt.nonTerminal!.all() as GroupRunRow[]).map(groupRunFromRow);
  }

  listRuns(query: ListGroupRunsQuery): GroupRunRecord[] {
    const where: string[] = [];
    const args: unknown[] = [];
    if (query.guestId !== undefined) {
      where.push("EXISTS (SELECT 1 FROM jobs WHERE jobs.group_run_id = group_runs.id AND jobs.guest_id = ?)");
      args.push(query.guestId);
    }
    if (query.activeOnly) where.push(ACTIVE);
    if (query.before) {
      where.push("(created_at, id) < (?, ?)");
      args.push(query.before.createdAt, query.before.id);
    }
    const sql = `SELECT * FROM group_runs ${where.length ? "WHERE " + where.join(" AND ") : ""} ORDER BY created_at DESC, id DESC LIMIT ?`;
    return (this.jobs.connection.prepare(sql).all(...args, query.limit) as GroupRunRow[]).map(groupRunFromRow);
  }

  /** The member jobs of a run: this node's, ordered by guest id, then those of other nodes (remoteMembers). */
  memberJobs(runId: string): Job[] {
    return [...this.localMemberJobs(runId), ...this.remoteMembers(runId)];
  }

  /** The member jobs this node runs for a run, ordered by guest id. */
  localMemberJobs(runId: string): JobRecord[] {
    return (this.stmt.memberIds!.all(runId) as Array<{ id: string }>).map((r) => this.jobs.getJob(r.id) as JobRecord);
  }

  /** The member jobs other nodes run for a run this node coordinates, as they last reported them (guest id `<guest>@<node>`). */
  remoteMembers(runId: string): Job[] {
    return (this.stmt.remote!.all(runId) as Array<{ job_json: string }>).map((r) => Job.fromJSON(JSON.parse(r.job_json)));
  }

  /** Records a remote member's job as its node reported it (its guestId is the run's name for it). */
  putRemoteMember(runId: string, job: Job, now: number): void {
    this.stmt.putRemote!.run(runId, job.guestId, JSON.stringify(Job.toJSON(job)), now);
  }

  /** The member guests of a run, or undefined when there is no such run (for the auth guard's scope check). */
  guestsOfRun(runId: string): string[] | undefined {
    return this.getRun(runId)?.guestIds;
  }

  /** Inserts a new run; the ledger calls it inside the transaction that also creates its members. */
  insertRun(run: GroupRunRecord): void {
    this.stmt.insert!.run(groupRunToRow(run, this.epoch));
  }

  /** Writes a changed run, fenced by the epoch. */
  updateRun(run: GroupRunRecord): void {
    const result = this.stmt.update!.run(groupRunToRow(run, this.epoch));
    if (result.changes === 1) return;
    const row = this.stmt.byId!.get(run.id) as GroupRunRow | undefined;
    if (!row) throw new LullError("LULL_E_GROUP_NOT_FOUND", `group run ${run.id} does not exist`);
    throw new LullError(
      "LULL_E_AGENT_RESTARTED",
      `group run ${run.id} belongs to a newer agent start (epoch ${row.epoch}); this writer (epoch ${this.epoch}) is stale`,
    );
  }
}
