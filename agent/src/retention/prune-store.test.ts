// Retention's SQL on a real SQLite database seeded with a history: exactly the jobs beyond the
// policy go, with every row that belongs to them; jobs that have not ended, the newest `keepLast`
// of each guest, and group runs that have not ended (or whose members may not all go) stay.
import { strict as assert } from "node:assert";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { JobStore } from "../jobs/store.js";
import { DAY_MS } from "./config.js";
import { batchesOf } from "./pruner.js";
import { PruneStore } from "./prune-store.js";
import { History, NOW } from "./testing/seed-history.js";

const dirs: string[] = [];
after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

function openStore(): JobStore {
  const dir = mkdtempSync(join(tmpdir(), "lull-retention-"));
  dirs.push(dir);
  return JobStore.open(join(dir, "agent.db"));
}

const count = (store: JobStore, sql: string, ...args: unknown[]) => (store.connection.prepare(sql).get(...args) as { n: number }).n;
const ids = (store: JobStore) => (store.connection.prepare("SELECT id FROM jobs ORDER BY id").all() as Array<{ id: string }>).map((r) => r.id).sort();
const maxSeqOf = (store: JobStore, jobIds: string[]) =>
  count(store, "SELECT MAX(seq) AS n FROM events WHERE job_id IN (SELECT value FROM json_each(?))", JSON.stringify(jobIds));

const POLICY = { maxAgeMs: 30 * DAY_MS, keepLast: 2 };

describe("retention: what goes", () => {
  it("deletes exactly the ended jobs beyond the policy, with their events, stacks and other child rows; keeps active jobs and runs", () => {
    const store = openStore();
    // A table a later migration might add: any table with a job_id column holds child rows.
    store.connection.exec("CREATE TABLE test_job_notes (job_id TEXT NOT NULL, note TEXT NOT NULL)");
    const h = new History(store);
    const a101 = h.ended("a", 101, { progress: 5 });
    const a90 = h.ended("a", 90);
    const a80 = h.ended("a", 80); // kept: one of a's two newest
    const a10 = h.ended("a", 10);
    const b200 = h.ended("b", 200); // kept: b's only job
    const c100 = h.ended("c", 100);
    const c99 = h.ended("c", 99);
    const c98 = h.ended("c", 98);
    const c400 = h.active("c", 400); // never: it has not ended
    // g1 and g2 get two newer jobs each, so their older group members are beyond keepLast.
    const g1Old = h.groupRun(["g1", "g2"], 120, true); // goes, run and all
    const g2Active = h.groupRun(["g1", "g2"], 150, false); // the run has not ended: stays
    const g3Mixed = h.groupRun(["g1", "g3"], 160, true); // g3's member is g3's only job: the run stays whole
    const newer = ["g1", "g2"].flatMap((g) => [h.ended(g, 5), h.ended(g, 4)]);
    for (const id of [a101, a80, ...g1Old.memberIds]) store.connection.prepare("INSERT INTO test_job_notes VALUES (?, 'x')").run(id);

    const gone = [a101, a90, c100, ...g1Old.memberIds];
    const kept = [a80, a10, b200, c400, c99, c98, ...g2Active.memberIds, ...g3Mixed.memberIds, ...newer];
    const eventsOfGone = count(store, "SELECT COUNT(*) AS n FROM events WHERE job_id IN (SELECT value FROM json_each(?))", JSON.stringify(gone));
    const groupEventsOfRun = count(store, "SELECT COUNT(*) AS n FROM events WHERE job_id = '' AND group_run_id = ?", g1Old.runId);
    assert.ok(groupEventsOfRun > 0, "the run has events of its own");
    const eventsBefore = count(store, "SELECT COUNT(*) AS n FROM events");
    const lastSeq = store.events.lastSeq();
    const watermarkA = maxSeqOf(store, [a101, a90]);
    const watermarkAll = Math.max(maxSeqOf(store, gone), count(store, "SELECT MAX(seq) AS n FROM events WHERE group_run_id = ?", g1Old.runId));

    const prune = new PruneStore(store);
    const units = prune.prunableUnits(POLICY, NOW);
    assert.deepEqual(units.map((u) => [...u.jobIds].sort()), [[a101], [c100], [a90], [...g1Old.memberIds].sort()]);
    assert.equal(units[3]!.groupRunId, g1Old.runId);
    const counts = prune.deleteUnits(units);

    assert.deepEqual(ids(store), [...kept].sort());
    assert.deepEqual(counts, { jobs: 5, groupRuns: 1, events: eventsOfGone + groupEventsOfRun, otherRows: counts.otherRows });
    assert.equal(count(store, "SELECT COUNT(*) AS n FROM events"), eventsBefore - counts.events);
    assert.equal(count(store, "SELECT COUNT(*) AS n FROM events WHERE job_id NOT IN (SELECT id FROM jobs) AND job_id <> ''"), 0, "no event of a deleted job");
    assert.equal(count(store, "SELECT COUNT(*) AS n FROM job_stacks WHERE job_id NOT IN (SELECT id FROM jobs)"), 0, "no stack of a deleted job");
    assert.deepEqual(
      (store.connection.prepare("SELECT job_id FROM test_job_notes").all() as Array<{ job_id: string }>).map((r) => r.job_id),
      [a80],
      "a later table's child rows go too",
    );
    assert.equal(counts.otherRows, gone.length + 3, "one stack row per deleted job and three notes");
    assert.equal(count(store, "SELECT COUNT(*) AS n FROM group_runs WHERE id = ?", g1Old.runId), 0);
    assert.equal(count(store, "SELECT COUNT(*) AS n FROM events WHERE group_run_id = ?", g1Old.runId), 0, "the run's own events went with it");
    assert.equal(count(store, "SELECT COUNT(*) AS n FROM group_runs"), 2);

    assert.equal(store.events.prunedThrough(), watermarkAll);
    assert.equal(store.events.prunedThrough("a"), watermarkA);
    assert.equal(store.events.prunedThrough("b"), 0, "nothing of b was pruned");
    assert.equal(store.events.lastSeq(), lastSeq);
    assert.deepEqual(prune.prunableUnits(POLICY, NOW), [], "a second look finds nothing");
    store.close();
  });
});

describe("retention: a guest vzdump shut down", () => {
  it("keeps an old ended job while its stop-mode shutdown is still open (the crash cleanup has not started the guest), lets it go once settled", () => {
    const store = openStore();
    const h = new History(store);
    const open = h.ended("a", 100);
    const settled = h.ended("a", 90);
    h.ended("a", 2);
    h.ended("a", 1);
    const insert = store.connection.prepare("INSERT INTO vzdump_shutdowns (job_id, vmid, vmtype, shutdown_at, settled_at) VALUES (?, 101, 'lxc', 1, ?)");
    insert.run(open, null);
    insert.run(settled, 2);
    const prune = new PruneStore(store);
    assert.deepEqual(prune.prunableUnits(POLICY, NOW).map((u) => u.jobIds), [[settled]]);
    store.connection.prepare("UPDATE vzdump_shutdowns SET restarted_at = 3 WHERE job_id = ?").run(open);
    assert.deepEqual(prune.prunableUnits(POLICY, NOW).map((u) => u.jobIds).sort(), [[open], [settled]].sort());
    store.close();
  });
});

describe("retention: sequence numbers", () => {
  it("stay monotonic when the newest events are pruned (keepLast 0)", () => {
    const store = openStore();
    const h = new History(store);
    h.ended("a", 50, { progress: 3 });
    const last = store.events.lastSeq();
    const prune = new PruneStore(store);
    prune.deleteUnits(prune.prunableUnits({ maxAgeMs: DAY_MS, keepLast: 0 }, NOW));
    assert.equal(count(store, "SELECT COUNT(*) AS n FROM events"), 0);
    assert.equal(store.events.lastSeq(), last, "the newest number is still known");
    assert.equal(store.events.prunedThrough(), last);
    const next = h.ended("a", 1);
    assert.ok(count(store, "SELECT MIN(seq) AS n FROM events WHERE job_id = ?", next) > last, "new events get new numbers");
    store.close();
  });
});

describe("retention: batches", () => {
  it("never split a unit, and stay within the job and event bounds", () => {
    const unit = (jobs: number, events: number) => ({ jobIds: Array.from({ length: jobs }, (_, i) => `j${i}`), events });
    const units = [unit(1, 10), unit(1, 10), unit(3, 5), unit(1, 100), unit(1, 1)];
    const sizes = batchesOf(units, { maxJobs: 3, maxEvents: 50 }).map((b) => b.map((u) => u.jobIds.length));
    assert.deepEqual(sizes, [[1, 1], [3], [1], [1]]);
    assert.deepEqual(batchesOf([], { maxJobs: 3, maxEvents: 50 }), []);
  });
});
