// The stop-mode shutdown records (migration 5) on the agent's database: open until post-restart or
// the cleanup settles them, only of ended jobs (or of the run that ends now), noted once.
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, it } from "node:test";
import { Phase, QuiescePolicy } from "@lull/proto";
import { DATABASE_FILE } from "../../agent.js";
import { newJobRecord } from "../../jobs/job.js";
import { JobStore } from "../../jobs/store.js";
import { VzdumpShutdownStore } from "./shutdown-store.js";

let dir: string;
let jobs: JobStore;

function addJob(id: string, guestId: string, phase: Phase): void {
  const record = newJobRecord({ id, guestId, engine: "vzdump", policy: QuiescePolicy.QUIESCE_POLICY_FAIL, idempotencyKey: id, quiesceTimeoutMs: 1_000, requestedBy: "test", now: 1 });
  jobs.createJob({ ...record, phase }, [], 1);
}

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "lull-shutdowns-"));
  jobs = JobStore.open(join(dir, DATABASE_FILE));
});
afterEach(async () => {
  jobs.close();
  await rm(dir, { recursive: true, force: true });
});

describe("VzdumpShutdownStore", () => {
  it("records into the agent's own database, on the job store's connection: durable before the shutdown", () => {
    addJob("j-a", "101", Phase.PHASE_FAILED);
    new VzdumpShutdownStore(jobs.connection).recordShutdown("j-a", 101, "lxc", 10);
    jobs.close();
    jobs = JobStore.open(join(dir, DATABASE_FILE)); // as after a crash of the agent
    assert.equal(new VzdumpShutdownStore(jobs.connection).get("j-a")?.shutdownAt, 10);
  });

  it("is open from pre-stop until post-restart or the cleanup's decision; only ended jobs or the ending run", () => {
    const store = new VzdumpShutdownStore(jobs.connection);
    addJob("j-ended", "101", Phase.PHASE_FAILED);
    addJob("j-running", "102", Phase.PHASE_ARCHIVING);
    addJob("j-restarted", "103", Phase.PHASE_DONE);
    store.recordShutdown("j-ended", 101, "lxc", 10);
    store.recordShutdown("j-ended", 101, "lxc", 99);
    store.recordShutdown("j-running", 102, "qemu", 11);
    store.recordShutdown("j-restarted", 103, "lxc", 12);
    store.recordRestartBegun("j-restarted", 13);
    store.recordRestarted("j-restarted", 14);
    assert.equal(store.get("j-ended")!.shutdownAt, 10, "the first record stays");
    assert.deepEqual(store.open().map((s) => s.jobId), ["j-ended"]);
    assert.deepEqual(store.ofRunningJobs().map((s) => s.jobId), ["j-running"]);
    assert.deepEqual(store.open("j-running").map((s) => s.jobId), ["j-ended", "j-running"]);
    assert.deepEqual(store.ofRunningJobs("j-running"), []);

    store.settle("j-ended", "started", 20);
    store.settle("j-ended", "again", 21);
    assert.deepEqual([store.get("j-ended")!.outcome, store.get("j-ended")!.settledAt], ["started", 20], "settled once");
    assert.deepEqual(store.open(), []);
    assert.deepEqual(store.unnoted().map((s) => s.jobId), ["j-ended"]);
    store.markNoted("j-ended", 22);
    assert.deepEqual(store.unnoted(), []);
  });

  it("keeps stop_vm's return and the lock's release, each once (the first time counts); the record stays open", () => {
    const store = new VzdumpShutdownStore(jobs.connection);
    addJob("j-a", "101", Phase.PHASE_CANCELLED);
    store.recordShutdown("j-a", 101, "qemu", 10);
    assert.deepEqual([store.get("j-a")?.stopReturnedAt, store.get("j-a")?.releasedAt], [undefined, undefined]);
    store.recordStopReturned("j-a", 20);
    store.recordStopReturned("j-a", 21);
    store.recordReleased("j-a", 30);
    store.recordReleased("j-a", 31);
    jobs.close();
    jobs = JobStore.open(join(dir, DATABASE_FILE));
    const again = new VzdumpShutdownStore(jobs.connection);
    assert.deepEqual([again.get("j-a")?.stopReturnedAt, again.get("j-a")?.releasedAt], [20, 30]);
    assert.deepEqual(again.open().map((s) => s.jobId), ["j-a"]);
  });

  it("goes with its job", () => {
    const store = new VzdumpShutdownStore(jobs.connection);
    addJob("j-gone", "101", Phase.PHASE_FAILED);
    store.recordShutdown("j-gone", 101, "lxc", 10);
    jobs.connection.prepare("DELETE FROM jobs WHERE id = ?").run("j-gone");
    assert.equal(store.get("j-gone"), undefined);
  });
});
