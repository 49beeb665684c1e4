// Start-up recovery, graphile-worker style: a database is seeded into the state a crash leaves
// (jobs stuck mid-phase, events up to the crash), then the agent starts on it.
import { strict as assert } from "node:assert";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { Consistency, EventKind, Phase, QuiescePolicy, SnapshotMode, StackState } from "@lull/proto";
import { LullError, silentLogger, systemClock } from "@lull/shared";
import { DATABASE_FILE } from "./agent.js";
import type { GuestConfig } from "./config.js";
import { createNativeEngine } from "./engines/native/engine.js";
import { createExecaRunner } from "@lull/shared";
import { EventBus } from "./events/bus.js";
import { eventFor, newJobRecord } from "./jobs/job.js";
import { newJobId } from "./jobs/job-id.js";
import { JobLedger } from "./jobs/ledger.js";
import { JobStore } from "./jobs/store.js";
import { collectEvents, startTestAgent, testConfig } from "./testing/agent-harness.js";
import { FakeEngine } from "./testing/fake-engine.js";

const GUESTS = [
  { id: "demo", driver: "dir", snapshot: "copy", volumes: [{ name: "data", path: "/srv/demo" }] },
  { id: "other", driver: "dir", snapshot: "copy", volumes: [{ name: "data", path: "/srv/other" }] },
];
const dirs: string[] = [];
after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

/** A new native job of `guestId` in `queued`; returns its id. */
function seedJob(ledger: JobLedger, guestId: string, key: string): string {
  const record = newJobRecord({
    id: newJobId(Date.now()),
    guestId,
    engine: "native",
    policy: QuiescePolicy.QUIESCE_POLICY_FAIL,
    idempotencyKey: key,
    quiesceTimeoutMs: 60_000,
    requestedBy: "seed",
    now: Date.now(),
  });
  return ledger.create(record, eventFor(record, EventKind.EVENT_KIND_PHASE)).job.id;
}

/** Takes a queued job through a point-in-time copy (`mode`) into `archiving`. */
function seedToArchiving(ledger: JobLedger, jobId: string, mode: SnapshotMode): void {
  ledger.apply(jobId, [
    { type: "start-quiesce", stacks: [] },
    { type: "barrier-ended", consistency: Consistency.CONSISTENCY_CRASH, timedOut: false },
    { type: "snapshotting", mode },
    { type: "snapshotted", mode, snapshotAt: Date.now() },
    { type: "archiving", mode, bytesTotal: 100 },
  ]);
}

/** A database as a crash leaves it: `demo` died in quiescing, `other` in archiving, one older job done. */
function seedCrashedDatabase(dir: string) {
  mkdirSync(join(dir, "data"), { recursive: true });
  const store = JobStore.open(join(dir, "data", DATABASE_FILE));
  const ledger = new JobLedger({ store, bus: new EventBus(silentLogger()), log: silentLogger(), clock: systemClock });
  const create = (guestId: string, key: string) => seedJob(ledger, guestId, key);
  const finished = create("demo", "old");
  ledger.apply(finished, [
    { type: "start-quiesce", stacks: [] },
    { type: "barrier-ended", consistency: Consistency.CONSISTENCY_CRASH, timedOut: false },
    { type: "archiving", mode: SnapshotMode.SNAPSHOT_MODE_NONE, bytesTotal: 1 },
    { type: "done", archivePath: "/a/old.tar.zst", archiveBytes: 1 },
  ]);
  const quiescing = create("demo", "q");
  ledger.apply(quiescing, { type: "start-quiesce", stacks: ["web"] });
  ledger.apply(quiescing, { type: "stack-acknowledged", stack: "web", at: Date.now() });
  const archiving = create("other", "a");
  seedToArchiving(ledger, archiving, SnapshotMode.SNAPSHOT_MODE_SNAPSHOT);
  return { store, finished, quiescing, archiving, lastSeq: store.events.lastSeq() };
}

describe("start-up recovery", () => {
  it("settles every interrupted job as failed in the phase it died in, tells watchers, and sweeps leftovers", async () => {
    const dir = mkdtempSync(join(tmpdir(), "lull-recovery-"));
    dirs.push(dir);
    const seeded = seedCrashedDatabase(dir);
    const engine = new FakeEngine({ sweepRemoves: ["/staging/lull-demo-j-x", "/archives/lull-other-j-y.tar.zst.partial"] });
    const t = await startTestAgent({ dir, engine, guests: GUESTS });
    try {
      assert.deepEqual(
        t.agent.recovery.settled.map((s) => [s.jobId, s.failedIn]),
        [
          [seeded.quiescing, "quiescing"],
          [seeded.archiving, "archiving"],
        ],
      );
      for (const [guestId, jobId, phase] of [
        ["demo", seeded.quiescing, Phase.PHASE_QUIESCING],
        ["other", seeded.archiving, Phase.PHASE_ARCHIVING],
      ] as const) {
        const job = await t.api.getJob({ guestId, jobId });
        assert.equal(job.phase, Phase.PHASE_FAILED);
        assert.equal(job.failedIn, phase);
        assert.equal(job.errorCode, "LULL_E_AGENT_RESTARTED");
      }
      const kept = await t.api.getJob({ guestId: "demo", jobId: seeded.quiescing });
      assert.equal(kept.stacks[0]?.state, StackState.STACK_STATE_QUIESCED, "the barrier's record survives for the controller");
      assert.equal((await t.api.getJob({ guestId: "demo", jobId: seeded.finished })).phase, Phase.PHASE_DONE, "ended jobs are untouched");

      const missed = await collectEvents(t, { afterSeq: seeded.lastSeq }, (_e, all) => all.length === 2);
      assert.deepEqual(missed.map((e) => [e.jobId, e.phase, e.errorCode]), [
        [seeded.quiescing, Phase.PHASE_FAILED, "LULL_E_AGENT_RESTARTED"],
        [seeded.archiving, Phase.PHASE_FAILED, "LULL_E_AGENT_RESTARTED"],
      ]);

      assert.deepEqual(engine.callsOf("sweep"), ["sweep demo,other"]);
      assert.deepEqual(t.agent.recovery.removed, ["/staging/lull-demo-j-x", "/archives/lull-other-j-y.tar.zst.partial"]);
      const swept = t.logs.filter((l) => l.msg === "swept leftover").map((l) => l.removed);
      assert.deepEqual(swept, t.agent.recovery.removed, "each removal is logged");

      const fresh = await t.api.startBackup({ guestId: "demo" });
      assert.equal(fresh.created, true, "the guest is free again");

      // The previous start's store handle is a stale writer now: fenced off.
      const stale = seeded.store.getJob(seeded.archiving)!;
      assert.throws(
        () => seeded.store.saveJob({ ...stale, phase: Phase.PHASE_DONE }, [], Date.now()),
        (err: unknown) => err instanceof LullError && err.code === "LULL_E_AGENT_RESTARTED",
      );
      assert.equal((await t.api.getJob({ guestId: "other", jobId: seeded.archiving })).phase, Phase.PHASE_FAILED);
    } finally {
      seeded.store.close();
      await t.stop();
    }
  });

  it("a failing sweep is logged and does not keep the agent from starting", async () => {
    const dir = mkdtempSync(join(tmpdir(), "lull-recovery-"));
    dirs.push(dir);
    const engine = new FakeEngine();
    engine.sweep = async (_guests: readonly GuestConfig[]) => {
      throw new LullError("LULL_E_CLEANUP_FAILED", "device busy");
    };
    const t = await startTestAgent({ dir, engine });
    try {
      assert.deepEqual(t.agent.recovery.sweepErrors, [{ engine: "native", code: "LULL_E_CLEANUP_FAILED", message: "device busy" }]);
      assert.ok(t.logs.some((l) => l.msg === "start-up sweep failed" && l.code === "LULL_E_CLEANUP_FAILED"));
      assert.equal((await t.api.getAgentInfo()).node, "test-node");
    } finally {
      await t.stop();
    }
  });

  it("a native job whose archive was complete under its final name is failed with the archive recorded; a partial one is swept", async () => {
    const dir = mkdtempSync(join(tmpdir(), "lull-recovery-"));
    dirs.push(dir);
    const guests = GUESTS.map((g) => ({ ...g, volumes: [{ name: "data", path: join(dir, "app") }] }));
    const seeded = seedCrashedDatabase(dir);
    seeded.store.close();
    // demo died after the archive's rename: a new job of demo stands in for it in the seed.
    const store = JobStore.open(join(dir, "data", DATABASE_FILE));
    const jobs = new JobLedger({ store, bus: new EventBus(silentLogger()), log: silentLogger(), clock: systemClock });
    jobs.apply(seeded.quiescing, { type: "fail", code: "LULL_E_INTERNAL", message: "not this test's job" });
    const written = seedJob(jobs, "demo", "written");
    seedToArchiving(jobs, written, SnapshotMode.SNAPSHOT_MODE_COPY);
    store.close();

    const archives = join(dir, "archives");
    mkdirSync(join(archives, "demo"), { recursive: true });
    const final = join(archives, "demo", `demo-20261122T105827Z-${written}.tar.zst`);
    writeFileSync(final, Buffer.alloc(1234, 7));
    const elsewhere = join(archives, "demo", `demo-20261121T105827Z-${seeded.finished}.tar.zst`);
    writeFileSync(elsewhere, "another job's archive");
    const partial = join(archives, `lull-partial-${seeded.archiving}.tar.zst`); // other's run died mid-archive
    writeFileSync(partial, "half an archive");

    const config = testConfig(dir, { guests });
    const engine = createNativeEngine({ config, runner: createExecaRunner(), log: silentLogger() });
    const t = await startTestAgent({ dir, engine, guests });
    try {
      const job = await t.api.getJob({ guestId: "demo", jobId: written });
      assert.equal(job.phase, Phase.PHASE_FAILED, "nothing confirmed the job: still failed");
      assert.equal(job.failedIn, Phase.PHASE_ARCHIVING);
      assert.equal(job.errorCode, "LULL_E_AGENT_RESTARTED");
      assert.equal(job.archivePath, final);
      assert.equal(job.archiveBytes, 1234);
      assert.match(job.errorMessage, /was written completely, but the agent stopped before it confirmed the job/);
      assert.ok(existsSync(final) && existsSync(elsewhere), "archives are kept");
      const events = await collectEvents(t, { jobId: written }, (e) => e.phase === Phase.PHASE_FAILED);
      const note = events.find((e) => e.kind === EventKind.EVENT_KIND_NOTE && e.message.includes(final));
      assert.ok(note, "watchers are told the archive exists");
      assert.match(note.message, /1234 bytes/);
      assert.deepEqual(
        t.agent.recovery.settled.find((s) => s.jobId === written),
        { jobId: written, guestId: "demo", failedIn: "archiving", archivePath: final, archiveBytes: 1234 },
      );
      assert.ok(t.logs.some((l) => l.msg === "interrupted job settled with its archive written" && l.archivePath === final));

      const other = await t.api.getJob({ guestId: "other", jobId: seeded.archiving });
      assert.equal(other.phase, Phase.PHASE_FAILED);
      assert.equal(other.archivePath, "", "only a partial file: no archive recorded");
      assert.equal(existsSync(partial), false, "the partial file was swept");
      assert.ok(t.agent.recovery.removed.includes(partial));
    } finally {
      await t.stop();
    }
  });
});
