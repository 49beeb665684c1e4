// Recovery of group runs interrupted by an agent crash: the database is seeded into the state a
// crash leaves (through the real ledgers, then closed without settling), then a real agent starts
// on it. Each run is settled from its members, its end is persisted as an event, and the guests
// take new work.
import { strict as assert } from "node:assert";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { Consistency, EventKind, Phase, QuiescePolicy, SnapshotMode } from "@lull/proto";
import { createLogger, systemClock } from "@lull/shared";
import { DATABASE_FILE } from "../agent.js";
import { EventBus } from "../events/bus.js";
import { newJobId } from "../jobs/job-id.js";
import { newJobRecord, type JobRecord } from "../jobs/job.js";
import { JobLedger } from "../jobs/ledger.js";
import type { JobEvent } from "../jobs/machine.js";
import { JobStore } from "../jobs/store.js";
import { collectEvents, startTestAgent, testConfig, type TestAgent } from "../testing/agent-harness.js";
import { memberJobKey, newGroupRunId, newGroupRunRecord } from "./group-run.js";
import { GroupLedger } from "./ledger.js";
import type { GroupEvent } from "./machine.js";
import { GroupStore } from "./store.js";
import { groupApi, waitForGroup } from "./testing/group-api.js";
import { TimelineEngine } from "./testing/timeline-engine.js";

const GUESTS = ["101", "102", "103", "104"].map((id) => ({ id, driver: "dir", snapshot: "copy", volumes: [{ name: "data", path: `/nonexistent/${id}` }] }));
const SNAP = SnapshotMode.SNAPSHOT_MODE_SNAPSHOT;

/** Seeds one group run through the ledgers, leaving each member where `steps` say. */
function seedRun(groups: GroupLedger, jobs: JobLedger, guestIds: string[], groupSteps: GroupEvent[], memberSteps: Record<string, JobEvent[]>): { runId: string; members: JobRecord[] } {
  const now = Date.now();
  const runId = newGroupRunId(now);
  const run = newGroupRunRecord({ id: runId, groupId: "", guestIds, policy: QuiescePolicy.QUIESCE_POLICY_FAIL, idempotencyKey: runId, quiesceTimeoutMs: 5000, requestedBy: "seed", now });
  const members = guestIds.map((guestId) =>
    newJobRecord({ id: newJobId(now), guestId, engine: "native", policy: run.policy, idempotencyKey: memberJobKey(runId, guestId), quiesceTimeoutMs: 5000, requestedBy: "seed", now, groupRunId: runId }),
  );
  groups.create(run, members);
  for (const step of groupSteps) groups.apply(runId, step);
  for (const m of members) for (const step of memberSteps[m.guestId] ?? []) jobs.apply(m.id, step);
  return { runId, members };
}

describe("start-up recovery of group runs", () => {
  const dir = mkdtempSync(join(tmpdir(), "lull-group-recovery-"));
  let t: TestAgent | undefined;
  after(async () => {
    await t?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("settles an interrupted run as failed (members named, LULL_E_AGENT_RESTARTED) and a finished one as done", async () => {
    const config = testConfig(dir, { guests: GUESTS });
    const store = JobStore.open(join(config.dataDir, DATABASE_FILE));
    const log = createLogger({ name: "seed", level: "silent" });
    const bus = new EventBus(log);
    const jobs = new JobLedger({ store, bus, log, clock: systemClock });
    const groups = new GroupLedger(jobs);
    const quiesced: JobEvent[] = [
      { type: "start-quiesce", stacks: ["db"] },
      { type: "stack-acknowledged", stack: "db", at: Date.now() },
      { type: "barrier-ended", consistency: Consistency.CONSISTENCY_APP, timedOut: false },
    ];
    // Died between the group barrier and the snapshot point: 101 snapshotting, 102 quiesced.
    const interrupted = seedRun(groups, jobs, ["101", "102"], [{ type: "start" }, { type: "barrier-passed", consistency: Consistency.CONSISTENCY_APP, at: Date.now() }], {
      "101": [...quiesced, { type: "snapshotting", mode: SNAP }],
      "102": quiesced,
    });
    // Died after both members ended done, before the run was marked so.
    const at = Date.now();
    const finished = seedRun(
      groups,
      jobs,
      ["103", "104"],
      [{ type: "start" }, { type: "barrier-passed", consistency: Consistency.CONSISTENCY_APP, at }, { type: "snapshot-point", snapshotAt: at }, { type: "archiving" }],
      Object.fromEntries(
        ["103", "104"].map((g) => [
          g,
          [...quiesced, { type: "snapshotting", mode: SNAP }, { type: "snapshotted", mode: SNAP, snapshotAt: at }, { type: "archiving", mode: SNAP, bytesTotal: 1 }, { type: "done", archivePath: `/a/${g}`, archiveBytes: 1 }],
        ]),
      ) as Record<string, JobEvent[]>,
    );
    store.close();

    t = await startTestAgent({ dir, engine: new TimelineEngine(), guests: GUESTS });
    const api = groupApi(t.client);
    assert.deepEqual(
      t.agent.recovery.settledGroups?.map((s) => [s.groupRunId, s.interruptedIn, s.outcome, s.failedGuests]),
      [
        [interrupted.runId, "snapshotting", "failed", ["101", "102"]],
        [finished.runId, "archiving", "done", []],
      ],
    );

    const failed = await api.getGroup({ groupRunId: interrupted.runId });
    assert.equal(failed.phase, Phase.PHASE_FAILED);
    assert.equal(failed.failedIn, Phase.PHASE_SNAPSHOTTING);
    assert.equal(failed.errorCode, "LULL_E_AGENT_RESTARTED");
    assert.deepEqual(failed.failedGuests, ["101", "102"]);
    assert.match(failed.errorMessage, /101 failed in snapshotting \(LULL_E_AGENT_RESTARTED/);
    assert.deepEqual(failed.members.map((m) => [m.guestId, m.phase, m.failedIn, m.errorCode]), [
      ["101", Phase.PHASE_FAILED, Phase.PHASE_SNAPSHOTTING, "LULL_E_AGENT_RESTARTED"],
      ["102", Phase.PHASE_FAILED, Phase.PHASE_QUIESCING, "LULL_E_AGENT_RESTARTED"],
    ]);
    assert.equal((await api.getGroup({ groupRunId: finished.runId })).phase, Phase.PHASE_DONE);

    // A watcher that reconnects sees the settled end, persisted with the run's other events.
    const events = await collectEvents(t, { groupRunId: interrupted.runId }, (e) => e.kind === EventKind.EVENT_KIND_GROUP && e.phase === Phase.PHASE_FAILED);
    assert.ok(events.some((e) => e.jobId === interrupted.members[0]?.id && e.phase === Phase.PHASE_FAILED), "the member's settled failure is in the same stream");

    // The guests take new work.
    const again = await api.startGroupBackup({ guestIds: ["101", "102"], idempotencyKey: "after-crash" });
    assert.equal((await waitForGroup(api, again.group!.id)).phase, Phase.PHASE_DONE);
  });
});
