// The verifier against a real PostgreSQL: an app-consistent point (the server shut down cleanly
// before the copy) passes and its evidence is on the run; a crash-consistent one (copied while a
// writer runs) fails the no-crash-recovery assertion — the check is proven able to fail. Every
// path leaves no replica: no scratch directory, no process carrying the replica's mark, no socket.
import assert from "node:assert/strict";
import { chmodSync, existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { Consistency, SnapshotMode, StackState } from "@lull/proto";
import { LullError, createExecaLauncher, createExecaRunner, createLogger, systemClock } from "@lull/shared";
import { pointIdOf } from "../backups/restore-point.js";
import { writeArchive } from "../archive/tar-zst.js";
import { EventBus } from "../events/bus.js";
import { JobLedger } from "../jobs/ledger.js";
import { JobStore } from "../jobs/store.js";
import { newJobId } from "../jobs/job-id.js";
import { verifyConfigSchema } from "./config.js";
import { safeNativeExtractor } from "./extract-native.js";
import { replicaProcesses } from "./replica.js";
import { replicaRestorer } from "./restore.js";
import { VerifyStore } from "./store.js";
import { makePgData, postgresUnavailable, type PgData } from "./testing/pg-data.js";
import { Verifier, type VerifierDeps } from "./verifier.js";

const unavailable = postgresUnavailable();
const runner = createExecaRunner();

describe("verifier (real PostgreSQL)", () => {
  let dir: string;
  let pg: PgData;
  let n = 0;
  before(() => {
    if (unavailable) assert.fail(`this test needs ${unavailable}`);
    dir = mkdtempSync(join(tmpdir(), "lull-verify-"));
    chmodSync(dir, 0o755); // postgres must reach the volume below it
    pg = makePgData(join(dir, "vol", "db"), 55301);
    pg.start();
    pg.query("CREATE TABLE items (id bigserial PRIMARY KEY, payload text NOT NULL)");
    pg.query("INSERT INTO items (payload) SELECT md5(g::text) FROM generate_series(1, 1000) g");
  });
  after(() => {
    try {
      pg?.stop();
    } catch {
      // already stopped
    }
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  function setUp(checks: unknown[], extra: Record<string, unknown> = {}, restore: VerifierDeps["restore"] = replicaRestorer({ extractNative: safeNativeExtractor() })) {
    const lines: Array<Record<string, unknown>> = [];
    const log = createLogger({ name: "test", level: "info", destination: { write: (l: string) => void lines.push(JSON.parse(l)) } });
    const state = join(dir, `state-${++n}`);
    const store = JobStore.open(join(state + ".db"));
    const jobs = new JobLedger({ store, bus: new EventBus(log), log, clock: systemClock });
    const config = verifyConfigSchema.parse({ checks, ports: { from: 55310, to: 55330 }, ...extra });
    const scratch = join(dir, "scratch");
    const verifier = new Verifier({
      config,
      prefix: "lull-",
      scratchDir: scratch,
      store: new VerifyStore(store.database),
      backups: jobs.backups,
      ledger: jobs.ledger,
      runner,
      launcher: createExecaLauncher(),
      restore,
      log,
      clock: systemClock,
    });
    return { verifier, jobs, store, scratch, lines, verifyStore: new VerifyStore(store.database) };
  }

  /** Archives the volume as the native engine does and records the point. */
  async function point(jobs: JobLedger, consistency: Consistency, live: boolean): Promise<string> {
    n += 1;
    const jobId = newJobId(Date.now() + n);
    const archiveDir = join(dir, "archives");
    const r = await writeArchive({
      archiveDir, prefix: "lull-", guestId: "app1", jobId, zstdLevel: 1, takenAt: Date.now(),
      volumes: [{ name: "db", readPath: pg.volume }], live, signal: new AbortController().signal,
    });
    const id = pointIdOf(jobId);
    jobs.ledger.commit(() =>
      jobs.backups.insert({
        id, jobId, guestId: "app1", groupRunId: "", engine: "native", mode: SnapshotMode.SNAPSHOT_MODE_COPY, consistency,
        snapshotAt: new Date(), createdAt: new Date(Date.now() + n), locationKind: "native-archive", location: r.archivePath,
        sizeBytes: r.archiveBytes, stacks: [{ stack: "shop", state: StackState.STACK_STATE_RESUMED }], protected: false, notes: "", origin: "lull", sha256: r.sha256, manifest: r.manifest, integrity: undefined,
      }),
    );
    return id;
  }

  const pgCheck = { guest: "app1", stack: "shop", check: { type: "postgres", dataDir: "db/pgdata", queries: ["SELECT count(*) FROM items", "SELECT 'ok'"] } };

  async function assertNoReplicaLeft(scratch: string) {
    const left = existsSync(scratch) ? readdirSync(scratch) : [];
    assert.deepEqual(left, [], "no replica directory left");
    const procs = await replicaProcesses(join(scratch, ""));
    assert.deepEqual(procs, []);
  }

  it("an app-consistent point (clean shut-down before the copy) passes; evidence and the stack's verified marker are stored", async () => {
    const { verifier, jobs, scratch, verifyStore } = setUp([pgCheck]);
    pg.stop();
    const id = await point(jobs, Consistency.CONSISTENCY_APP, false);
    pg.start();
    const run = await verifier.verify(id);
    assert.equal(run.phase, "passed", run.reason);
    const [result] = run.results;
    assert.equal(result!.ok, true);
    const evidence = result!.evidence as { log: string[]; queries: Array<{ sql: string; output: string }>; crashRecovery: boolean };
    assert.equal(evidence.crashRecovery, false);
    assert.ok(evidence.log.some((l) => /database system was shut down at/.test(l)), evidence.log.join("\n"));
    assert.deepEqual(evidence.queries.map((q) => q.output), ["1000", "ok"]);
    assert.ok(run.restoreMs >= 0 && run.checkMs > 0);
    assert.deepEqual(verifyStore.markers("app1").map((m) => [m.stack, m.verifiedBackupId]), [["shop", id]]);
    assert.deepEqual(verifyStore.ofPoint(id).map((r) => r.phase), ["passed"]);
    await assertNoReplicaLeft(scratch);
    // The same point is not verified again (no loop): the decision says it is verified.
    assert.deepEqual(verifier.decide("app1"), { verify: false, why: "verified" });
  });

  it("a crash-consistent point (copied while a writer runs) fails the no-crash-recovery check; the marker stays where it was", async () => {
    const { verifier, jobs, scratch, verifyStore } = setUp([pgCheck]);
    const writer = pg.startWriter();
    let id: string;
    let batches: number;
    try {
      await new Promise((r) => setTimeout(r, 300));
      id = await point(jobs, Consistency.CONSISTENCY_CRASH, true);
    } finally {
      batches = await writer.stop();
    }
    assert.ok(batches > 0, "the writer ran during the copy");
    const run = await verifier.verify(id);
    assert.equal(run.phase, "failed");
    assert.match(run.reason, /^shop: PostgreSQL ran crash recovery/);
    const evidence = run.results[0]!.evidence as { log: string[]; crashRecovery: boolean };
    assert.equal(evidence.crashRecovery, true);
    assert.ok(evidence.log.some((l) => /redo starts at|automatic recovery in progress/.test(l)));
    assert.deepEqual(verifyStore.markers("app1"), []);
    await assertNoReplicaLeft(scratch);
    // A failed verification is not retried by itself (retryFailedAfterHours 0).
    assert.equal(verifier.decide("app1").verify, false);
  });

  it("a command check sees the replica; its failure, a timeout and a cancel all end with the replica torn down", async () => {
    const script = `test -f "$LULL_REPLICA_ROOT/db/pgdata/PG_VERSION" && echo "stack=$LULL_STACK point=$LULL_POINT_ID"`;
    const ok = setUp([{ guest: "app1", stack: "files", check: { type: "command", argv: ["sh", "-c", script] } }]);
    pg.stop();
    const id = await point(ok.jobs, Consistency.CONSISTENCY_APP, false);
    pg.start();
    const passed = await ok.verifier.verify(id);
    assert.equal(passed.phase, "passed", passed.reason);
    assert.equal((passed.results[0]!.evidence as { stdout: string }).stdout, `stack=files point=${id}`);

    const failing = setUp([{ guest: "app1", stack: "files", check: { type: "command", argv: ["sh", "-c", "echo missing orders >&2; exit 3"] } }]);
    const id2 = await point(failing.jobs, Consistency.CONSISTENCY_APP, false);
    const failed = await failing.verifier.verify(id2);
    assert.equal(failed.phase, "failed");
    assert.match(failed.reason, /files: sh -c .* exited 3: missing orders/);

    const slow = setUp([{ guest: "app1", stack: "files", check: { type: "command", argv: ["sleep", "30"] } }], { timeoutMs: 1500 });
    const id3 = await point(slow.jobs, Consistency.CONSISTENCY_APP, false);
    const timedOut = await slow.verifier.verify(id3);
    assert.equal(timedOut.phase, "failed");
    assert.match(timedOut.reason, /longer than verify.timeoutMs \(1500 ms\)/);

    const cancelled = slow.verifier.verify(id3);
    await new Promise((r) => setTimeout(r, 500));
    const running = slow.verifyStore.ofPoint(id3)[0]!;
    assert.equal(slow.verifier.cancel(running.id), true);
    assert.equal((await cancelled).phase, "cancelled");
    // The agent stopping (a scheduled run's signal aborted with LULL_E_SHUTTING_DOWN) cancels too: no failure of the point.
    const stopping = new AbortController();
    const stopped = slow.verifier.verify(id3, { signal: stopping.signal });
    await new Promise((r) => setTimeout(r, 500));
    stopping.abort(new LullError("LULL_E_SHUTTING_DOWN", "the agent is shutting down"));
    const stoppedRun = await stopped;
    assert.deepEqual([stoppedRun.phase, stoppedRun.reason], ["cancelled", "the agent is shutting down"]);
    for (const s of [ok, failing, slow]) await assertNoReplicaLeft(s.scratch);
  });

  it("a timeout while the replica is still being restored is reported as the timeout, not as the step it interrupted", async () => {
    // A restore step that the abort stops before it starts a command (as the exec layer says it).
    const stuck: VerifierDeps["restore"] = (_point, _replica, signal) =>
      new Promise((_resolve, reject) => signal.addEventListener("abort", () => reject(new LullError("LULL_E_CANCELLED", "pct set 100 --net0 … was cancelled before it started")), { once: true }));
    const s = setUp([{ guest: "app1", stack: "files", check: { type: "command", argv: ["true"] } }], { timeoutMs: 1000 }, stuck);
    const id = await point(s.jobs, Consistency.CONSISTENCY_APP, false);
    const run = await s.verifier.verify(id);
    assert.deepEqual([run.phase, run.reason], ["failed", "verification took longer than verify.timeoutMs (1000 ms)"]);
    await assertNoReplicaLeft(s.scratch);
  });
});
