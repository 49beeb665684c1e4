// Real btrfs on a loop-mounted image (root + btrfs-progs; fails, never skips, without them).
import assert from "node:assert/strict";
import { mkdir, readFile, readdir, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { SnapshotMode } from "@lull/proto";
import { LullError, silentLogger, type Clock } from "@lull/shared";
import { createExecaRunner } from "@lull/shared";
import { createRecordingRunner, type Reply } from "@lull/shared/testing";
import { btrfsSnapshotDir, createBtrfsDriver, SNAPSHOTS_DIR } from "./btrfs.js";
import { jobId, testConfig } from "./testing/config.js";
import { createLoopBtrfs, createSubvolume, readOnlyProperty, type LoopMount } from "./testing/loop-btrfs.js";
import { listTree, makeSampleTree } from "./testing/tree.js";

const clock: Clock = { now: () => Date.now(), sleep: async () => undefined };
const signal = () => new AbortController().signal;

describe("btrfs storage driver (real btrfs)", () => {
  let fs: LoopMount;
  let app: string;
  let db: string;
  before(async () => {
    fs = await createLoopBtrfs();
    app = join(fs.path, "app");
    db = join(fs.path, "nested", "db");
    await createSubvolume(app);
    await mkdir(join(fs.path, "nested"));
    await createSubvolume(db);
    await makeSampleTree(app, "app");
    await makeSampleTree(db, "db");
  });
  after(async () => fs?.dispose());

  function setup(reply?: Reply) {
    const config = testConfig(fs.path, [
      { id: "201", driver: "btrfs", volumes: [{ name: "app", path: app }, { name: "db", path: db }] },
    ]);
    const runner = createRecordingRunner({ delegate: createExecaRunner(), ...(reply ? { reply } : {}) });
    return { config, runner, driver: createBtrfsDriver({ config, runner, log: silentLogger(), clock }), guest: config.guests[0]! };
  }

  it("takes read-only point-in-time snapshots with the exact btrfs argv, and release deletes them", async () => {
    const { runner, driver, guest } = setup();
    const job = jobId(1);
    const appSnap = join(fs.path, SNAPSHOTS_DIR, `lull-${job}`, "app");
    const dbSnap = join(fs.path, "nested", SNAPSHOTS_DIR, `lull-${job}`, "db");
    assert.equal(driver.modeFor(guest), SnapshotMode.SNAPSHOT_MODE_SNAPSHOT);
    await driver.preflight!({ jobId: job, guest, signal: signal() });
    assert.deepEqual(runner.argvs(), [
      ["btrfs", "subvolume", "show", app],
      ["btrfs", "subvolume", "show", db],
    ]);
    runner.clear();
    const started = Date.now();
    const handle = await driver.snapshot({ jobId: job, guest, signal: signal() });
    assert.ok(handle.createdAt >= started && handle.createdAt <= Date.now());
    assert.deepEqual(runner.argvs(), [
      ["btrfs", "subvolume", "snapshot", "-r", app, appSnap],
      ["btrfs", "subvolume", "snapshot", "-r", db, dbSnap],
    ]);
    assert.deepEqual(handle.artifacts, [appSnap, dbSnap]);
    assert.deepEqual(handle.volumes.map((v) => v.readPath), [appSnap, dbSnap]);

    assert.equal(await readOnlyProperty(appSnap), "ro=true");
    await assert.rejects(writeFile(join(appSnap, "new-file"), "x"), { code: "EROFS" });
    assert.deepEqual(await listTree(appSnap), await listTree(app));

    // Point in time: what the application writes after the snapshot is not in it.
    await writeFile(join(app, "config.yml"), "name: changed after snapshot\n");
    assert.equal(await readFile(join(appSnap, "config.yml"), "utf8"), "name: app\n");

    runner.clear();
    await driver.release(handle);
    assert.deepEqual(runner.argvs(), [
      ["btrfs", "subvolume", "delete", appSnap],
      ["btrfs", "subvolume", "delete", dbSnap],
    ]);
    await assert.rejects(stat(join(fs.path, SNAPSHOTS_DIR, `lull-${job}`)), { code: "ENOENT" });
    await assert.rejects(stat(join(fs.path, "nested", SNAPSHOTS_DIR, `lull-${job}`)), { code: "ENOENT" });
    await driver.release(handle); // idempotent
    await writeFile(join(app, "config.yml"), "name: app\n");
  });

  it("preflight: a volume that is not a subvolume fails before anything is created, naming the path", async () => {
    const plain = join(fs.path, "plain-dir");
    await mkdir(plain);
    const config = testConfig(fs.path, [
      { id: "202", driver: "btrfs", volumes: [{ name: "app", path: app }, { name: "plain", path: plain }] },
    ]);
    const runner = createRecordingRunner({ delegate: createExecaRunner() });
    const driver = createBtrfsDriver({ config, runner, log: silentLogger(), clock });
    await assert.rejects(
      driver.preflight!({ jobId: jobId(2), guest: config.guests[0]!, signal: signal() }),
      (err: unknown) =>
        err instanceof LullError &&
        err.code === "LULL_E_SNAPSHOT_FAILED" &&
        err.message.includes(`${plain} is not a btrfs subvolume`),
    );
    assert.equal(runner.argvs().filter((a) => a[2] === "snapshot").length, 0);
    await assert.rejects(stat(btrfsSnapshotDir(app, "lull-", jobId(2))), { code: "ENOENT" });
  });

  it("when the second snapshot fails, the first is deleted before the error is rethrown", async () => {
    const { runner, driver, guest } = setup((call) =>
      call.args[1] === "snapshot" && call.args.at(-1)?.endsWith("/db")
        ? { exitCode: 1, stderr: "ERROR: cannot snapshot: Read-only file system\n" }
        : undefined,
    );
    const job = jobId(3);
    await assert.rejects(
      driver.snapshot({ jobId: job, guest, signal: signal() }),
      (err: unknown) => err instanceof LullError && err.code === "LULL_E_SNAPSHOT_FAILED" && /volume db/.test(err.message),
    );
    const appSnap = join(btrfsSnapshotDir(app, "lull-", job), "app");
    assert.ok(runner.argvs().some((a) => a.join(" ") === `btrfs subvolume delete ${appSnap}`));
    await assert.rejects(stat(btrfsSnapshotDir(app, "lull-", job)), { code: "ENOENT" });
    await assert.rejects(stat(btrfsSnapshotDir(db, "lull-", job)), { code: "ENOENT" });
  });

  it("sweep after a crash removes the agent's leftovers (all, or one job's) and leaves foreign snapshots alone", async () => {
    const { driver, guest } = setup();
    const real = createExecaRunner();
    const snap = (src: string, dst: string) => real.run("btrfs", ["subvolume", "snapshot", "-r", src, dst], { timeoutMs: 60_000 });
    const leftover = (job: string, base: string) => join(base, SNAPSHOTS_DIR, `lull-${job}`);
    // What a crashed agent left: snapshots of two jobs, and a stray file in a job dir.
    await mkdir(leftover(jobId(8), fs.path), { recursive: true });
    await snap(app, join(leftover(jobId(8), fs.path), "app"));
    await mkdir(leftover(jobId(9), join(fs.path, "nested")), { recursive: true });
    await snap(db, join(leftover(jobId(9), join(fs.path, "nested")), "db"));
    await writeFile(join(leftover(jobId(9), join(fs.path, "nested")), "stray"), "x");
    // Not ours: an operator's snapshots, inside .lull-snapshots without the prefix, and elsewhere.
    const foreignInside = join(fs.path, SNAPSHOTS_DIR, "manual-2024");
    const foreignOutside = join(fs.path, "keep-snap");
    await snap(app, foreignInside);
    await snap(app, foreignOutside);

    assert.deepEqual(await driver.sweep([guest], { jobId: jobId(8) }), [
      join(leftover(jobId(8), fs.path), "app"),
      leftover(jobId(8), fs.path),
    ]);
    await stat(join(leftover(jobId(9), join(fs.path, "nested")), "db")); // another job's: still there

    const removed = await driver.sweep([guest]);
    assert.deepEqual(removed.sort(), [
      join(leftover(jobId(9), join(fs.path, "nested")), "db"),
      join(leftover(jobId(9), join(fs.path, "nested")), "stray"),
      leftover(jobId(9), join(fs.path, "nested")),
    ].sort());
    await assert.rejects(stat(join(fs.path, "nested", SNAPSHOTS_DIR)), { code: "ENOENT" });
    assert.deepEqual(await readdir(join(fs.path, SNAPSHOTS_DIR)), ["manual-2024"]);
    assert.equal(await readOnlyProperty(foreignInside), "ro=true");
    assert.equal(await readOnlyProperty(foreignOutside), "ro=true");
    assert.deepEqual(await driver.sweep([guest]), []);
  });
});
