// Restore points: every job that ends `done` leaves one, written in the transaction that ends it;
// no other ending does; and pruning job history never removes one.
import { strict as assert } from "node:assert";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { Consistency, EventKind, Phase, QuiescePolicy, SnapshotMode, StackState } from "@lull/proto";
import { silentLogger, systemClock } from "@lull/shared";
import { EventBus } from "../events/bus.js";
import { eventFor, newJobRecord } from "../jobs/job.js";
import { newJobId } from "../jobs/job-id.js";
import { JobLedger } from "../jobs/ledger.js";
import { JobStore } from "../jobs/store.js";
import { DAY_MS } from "../retention/config.js";
import { PruneStore } from "../retention/prune-store.js";
import { History, NOW } from "../retention/testing/seed-history.js";
import { locationKindOf, pointIdOf } from "./restore-point.js";

const dirs: string[] = [];
after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

function open(): { store: JobStore; ledger: JobLedger } {
  const dir = mkdtempSync(join(tmpdir(), "lull-points-"));
  dirs.push(dir);
  const store = JobStore.open(join(dir, "agent.db"));
  return { store, ledger: new JobLedger({ store, bus: new EventBus(silentLogger()), log: silentLogger(), clock: systemClock }) };
}

function started(ledger: JobLedger, guestId: string, engine = "native"): string {
  const now = Date.now();
  const job = newJobRecord({ id: newJobId(now), guestId, engine, policy: QuiescePolicy.QUIESCE_POLICY_FAIL, idempotencyKey: `k-${guestId}-${now}-${Math.random()}`, quiesceTimeoutMs: 5000, requestedBy: "test", now });
  ledger.create(job, eventFor(job, EventKind.EVENT_KIND_PHASE));
  ledger.apply(job.id, [
    { type: "start-quiesce", stacks: ["db", "web"] },
    { type: "stack-acknowledged", stack: "db", at: now },
    { type: "stack-acknowledged", stack: "web", at: now },
    { type: "barrier-ended", consistency: Consistency.CONSISTENCY_APP, timedOut: false },
    { type: "snapshotting", mode: SnapshotMode.SNAPSHOT_MODE_SNAPSHOT },
    { type: "snapshotted", mode: SnapshotMode.SNAPSHOT_MODE_SNAPSHOT, snapshotAt: now + 5 },
    { type: "archiving", mode: SnapshotMode.SNAPSHOT_MODE_SNAPSHOT, bytesTotal: 100 },
  ]);
  return job.id;
}

describe("restore points", () => {
  it("a job that ends done leaves one point with its guest, stacks, consistency, mode, snapshot time and location", () => {
    const { store, ledger } = open();
    const jobId = started(ledger, "web");
    assert.equal(ledger.backups.ofJob(jobId), undefined, "no point before the job is done");
    const done = ledger.apply(jobId, { type: "done", archivePath: "/archives/web.tar.zst", archiveBytes: 4096 });
    const point = ledger.backups.ofJob(jobId);
    assert.ok(point, "the point exists");
    assert.equal(point.id, pointIdOf(jobId));
    assert.deepEqual(ledger.backups.get(point.id), point);
    assert.equal(point.guestId, "web");
    assert.equal(point.consistency, Consistency.CONSISTENCY_APP);
    assert.equal(point.mode, SnapshotMode.SNAPSHOT_MODE_SNAPSHOT);
    assert.deepEqual(point.snapshotAt, done.snapshotAt);
    assert.deepEqual(point.createdAt, done.finishedAt);
    assert.equal(point.locationKind, "native-archive");
    assert.equal(point.location, "/archives/web.tar.zst");
    assert.equal(point.sizeBytes, 4096);
    assert.deepEqual(point.stacks, [
      { stack: "db", state: StackState.STACK_STATE_QUIESCED },
      { stack: "web", state: StackState.STACK_STATE_QUIESCED },
    ]);
    assert.equal(point.protected, false);
    assert.deepEqual(ledger.backups.list({ guestId: "web", limit: 10 }).map((p) => p.id), [point.id]);
    store.close();
  });

  it("records the archive's SHA-256, manifest and origin from the done event; protect, notes and integrity persist", () => {
    const { store, ledger } = open();
    const jobId = started(ledger, "web");
    const sha256 = "ab".repeat(32);
    ledger.apply(jobId, { type: "done", archivePath: "/archives/web.tar.zst", archiveBytes: 4096, sha256, manifest: { fileCount: 3, totalBytes: 9000 } });
    const point = ledger.backups.ofJob(jobId)!;
    assert.equal(point.sha256, sha256);
    assert.deepEqual(point.manifest, { fileCount: 3, totalBytes: 9000 });
    assert.equal(point.origin, "lull");
    assert.equal(point.integrity, undefined);
    assert.equal(ledger.backups.setProtected(point.id, true), true);
    assert.equal(ledger.backups.setProtected("b-missing", true), false, "no such point: nothing changed");
    assert.equal(ledger.backups.setNotes(point.id, "before the upgrade"), true);
    const at = new Date(Date.UTC(2026, 11, 2));
    ledger.backups.setIntegrity(point.id, { state: "failed", detail: "sha256 differs", at });
    const again = ledger.backups.get(point.id)!;
    assert.equal(again.protected, true);
    assert.equal(again.notes, "before the upgrade");
    assert.deepEqual(again.integrity, { state: "failed", detail: "sha256 differs", at });
    store.close();
  });

  it("a failed or cancelled job, and one recovery found an unconfirmed archive of, leave no point", () => {
    const { store, ledger } = open();
    const failed = started(ledger, "a");
    ledger.apply(failed, { type: "fail", code: "LULL_E_ARCHIVE_FAILED", message: "disk full" });
    const cancelled = started(ledger, "b");
    ledger.apply(cancelled, { type: "cancel", reason: "operator" });
    const found = started(ledger, "c");
    ledger.apply(found, [
      { type: "found-archive", archivePath: "/archives/c.tar.zst", archiveBytes: 9, message: "archive found, not confirmed" },
      { type: "fail", code: "LULL_E_AGENT_RESTARTED", message: "agent restarted" },
    ]);
    assert.equal(store.getJob(found)?.archivePath, "/archives/c.tar.zst", "the found archive is on the job");
    assert.deepEqual(ledger.backups.list({ limit: 10 }), []);
    store.close();
  });

  it("a done that cannot record its point does not end the job: the job, its events and the point are one transaction", () => {
    const { store, ledger } = open();
    const jobId = started(ledger, "web");
    const seq = store.events.lastSeq();
    store.connection.exec("CREATE TRIGGER refuse_points BEFORE INSERT ON backups BEGIN SELECT RAISE(ABORT, 'no room'); END");
    assert.throws(() => ledger.apply(jobId, { type: "done", archivePath: "/archives/web.tar.zst", archiveBytes: 1 }), /no room/);
    assert.equal(store.getJob(jobId)?.phase, Phase.PHASE_ARCHIVING, "the job is still archiving");
    assert.equal(store.getJob(jobId)?.finishedAt, undefined, "the job has not ended");
    assert.equal(store.events.lastSeq(), seq, "no event of the rolled-back done");
    store.close();
  });

  it("job retention deletes old jobs but never their restore points", () => {
    const { store } = open();
    const h = new History(store);
    const old = h.ended("a", 100);
    h.ended("a", 2);
    h.ended("a", 1);
    const prune = new PruneStore(store);
    const units = prune.prunableUnits({ maxAgeMs: 30 * DAY_MS, keepLast: 2 }, NOW);
    assert.deepEqual(units.map((u) => u.jobIds), [[old]]);
    prune.deleteUnits(units);
    assert.equal(store.getJob(old), undefined, "the job row went");
    const point = new JobLedger({ store, bus: new EventBus(silentLogger()), log: silentLogger(), clock: systemClock }).backups.ofJob(old);
    assert.ok(point, "its restore point stayed");
    assert.equal(point.location, `/archives/${old}.tar.zst`);
    store.close();
  });

  it("names a location's kind from the engine and what it names", () => {
    assert.equal(locationKindOf("native", "/archives/x.tar.zst"), "native-archive");
    assert.equal(locationKindOf("vzdump", "/var/lib/vz/dump/vzdump-lxc-101-2026_12_02-10_00_00.tar.zst"), "vzdump-archive");
    assert.equal(locationKindOf("vzdump", "ct/101/2026-12-02T10:00:00Z"), "pbs-snapshot");
  });
});
