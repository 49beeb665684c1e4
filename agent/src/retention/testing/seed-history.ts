// Seeds a job store with a history, through the real ledgers, at chosen times: jobs that ended N
// days ago (with stacks and progress events), jobs that have not ended, and consistency group runs
// whose end is written as a crash-free store would hold it. For the retention tests.
import { Consistency, EventKind, QuiescePolicy, SnapshotMode } from "@lull/proto";
import { silentLogger, type Clock } from "@lull/shared";
import { EventBus } from "../../events/bus.js";
import { memberJobKey, newGroupRunId, newGroupRunRecord } from "../../groups/group-run.js";
import { GroupLedger } from "../../groups/ledger.js";
import { GroupStore } from "../../groups/store.js";
import { eventFor, newJobRecord } from "../../jobs/job.js";
import { newJobId } from "../../jobs/job-id.js";
import { JobLedger } from "../../jobs/ledger.js";
import type { JobEvent } from "../../jobs/machine.js";
import type { JobStore } from "../../jobs/store.js";
import { DAY_MS } from "../config.js";

export const NOW = Date.UTC(2026, 10, 22, 12, 0, 0);

export interface HistoryOptions {
  /** Progress events while archiving. */
  progress?: number;
  stacks?: string[];
}

export class History {
  private at: number;
  private readonly clock: Clock = { now: () => this.at, sleep: async () => undefined };
  readonly jobs: JobLedger;
  readonly groups: GroupLedger;
  private seq = 0;

  /** `now`: the moment "days ago" counts back from (a fixed NOW, or the real time for a real agent). */
  constructor(
    readonly store: JobStore,
    private readonly now = NOW,
  ) {
    this.at = now;
    const log = silentLogger();
    const bus = new EventBus(log);
    this.jobs = new JobLedger({ store, bus, log, clock: this.clock });
    this.groups = new GroupLedger(this.jobs);
  }

  private newJob(guestId: string, groupRunId?: string) {
    this.seq += 1;
    const key = groupRunId ? memberJobKey(groupRunId, guestId) : `seed-${this.seq}`;
    const id = newJobId(this.at);
    return newJobRecord({ id, guestId, engine: "native", policy: QuiescePolicy.QUIESCE_POLICY_FAIL, idempotencyKey: key, quiesceTimeoutMs: 5000, requestedBy: "seed", now: this.at, groupRunId });
  }

  private runToEnd(jobId: string, o: HistoryOptions): void {
    const steps: JobEvent[] = [
      { type: "start-quiesce", stacks: o.stacks ?? ["web"] },
      { type: "barrier-ended", consistency: Consistency.CONSISTENCY_CRASH, timedOut: true },
      { type: "archiving", mode: SnapshotMode.SNAPSHOT_MODE_NONE, bytesTotal: 100 },
    ];
    for (let i = 1; i <= (o.progress ?? 0); i++) steps.push({ type: "progress", bytesDone: i, bytesTotal: 100 });
    steps.push({ type: "done", archivePath: `/archives/${jobId}.tar.zst`, archiveBytes: 10 });
    this.jobs.apply(jobId, steps);
  }

  /** A job of `guestId` that was created and ended `daysAgo` days before NOW. */
  ended(guestId: string, daysAgo: number, o: HistoryOptions = {}): string {
    this.at = this.now - daysAgo * DAY_MS;
    const job = this.newJob(guestId);
    this.jobs.create(job, eventFor(job, EventKind.EVENT_KIND_PHASE));
    this.runToEnd(job.id, o);
    return job.id;
  }

  /** A job created `daysAgo` days before NOW that is still quiescing. */
  active(guestId: string, daysAgo: number): string {
    this.at = this.now - daysAgo * DAY_MS;
    const job = this.newJob(guestId);
    this.jobs.create(job, eventFor(job, EventKind.EVENT_KIND_PHASE));
    this.jobs.apply(job.id, { type: "start-quiesce", stacks: ["web"] });
    return job.id;
  }

  /** A group run `daysAgo` days before NOW whose members all ended then; the run itself has ended when `runEnded`. */
  groupRun(guestIds: string[], daysAgo: number, runEnded: boolean): { runId: string; memberIds: string[] } {
    this.at = this.now - daysAgo * DAY_MS;
    const runId = newGroupRunId(this.at);
    const run = newGroupRunRecord({ id: runId, groupId: "", guestIds, policy: QuiescePolicy.QUIESCE_POLICY_FAIL, idempotencyKey: runId, quiesceTimeoutMs: 5000, requestedBy: "seed", now: this.at });
    const members = guestIds.map((g) => this.newJob(g, runId));
    this.groups.create(run, members);
    this.groups.apply(runId, { type: "start" });
    for (const m of members) this.runToEnd(m.id, {});
    if (runEnded) {
      // The run's end as the store holds it (written directly: the group machine's own end is not what is tested here).
      this.store.connection.prepare("UPDATE group_runs SET phase = 'done', finished_at = ?, updated_at = ? WHERE id = ?").run(this.at, this.at, runId);
    }
    return { runId, memberIds: members.map((m) => m.id) };
  }
}
