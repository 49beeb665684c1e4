import assert from "node:assert/strict";
import { mkdir, mkdtemp, readdir, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { SnapshotMode } from "@lull/proto";
import { LullError, silentLogger, type Clock } from "@lull/shared";
import { createExecaRunner } from "@lull/shared";
import { createRecordingRunner } from "@lull/shared/testing";
import { createDirDriver, stagingDirOf } from "./dir.js";
import { jobId, testConfig } from "./testing/config.js";
import { listTree, makeSampleTree } from "./testing/tree.js";

const clock: Clock = { now: () => Date.now(), sleep: async () => undefined };

describe("dir storage driver", () => {
  let root: string;
  before(async () => {
    root = await mkdtemp(join(tmpdir(), "lull-dir-"));
    await makeSampleTree(join(root, "src", "app"), "app");
    await makeSampleTree(join(root, "src", "db"), "db");
  });
  after(async () => rm(root, { recursive: true, force: true }));

  const guest = (snapshot: "copy" | "none") => ({
    id: "101",
    driver: "dir",
    snapshot,
    volumes: [
      { name: "app", path: join(root, "src", "app") },
      { name: "db", path: join(root, "src", "db") },
    ],
  });

  it("COPY stages a faithful copy of every volume (modes, times, symlinks) and release removes it", async () => {
    const config = testConfig(root, [guest("copy")]);
    const driver = createDirDriver({ config, runner: createExecaRunner(), log: silentLogger(), clock });
    const g = config.guests[0]!;
    assert.equal(driver.modeFor(g), SnapshotMode.SNAPSHOT_MODE_COPY);
    const before = Date.now();
    const handle = await driver.snapshot({ jobId: jobId(1), guest: g, signal: new AbortController().signal });
    const afterCopy = Date.now();
    assert.equal(handle.mode, SnapshotMode.SNAPSHOT_MODE_COPY);
    assert.ok(handle.createdAt >= before && handle.createdAt <= afterCopy);
    const staging = stagingDirOf(config.stagingDir, "lull-", jobId(1));
    assert.deepEqual(handle.artifacts, [staging]);
    assert.deepEqual(
      handle.volumes.map((v) => [v.name, v.readPath]),
      [
        ["app", join(staging, "app")],
        ["db", join(staging, "db")],
      ],
    );
    for (const v of handle.volumes) assert.deepEqual(await listTree(v.readPath), await listTree(v.sourcePath));

    await driver.release(handle);
    await assert.rejects(stat(staging), { code: "ENOENT" });
    await driver.release(handle); // idempotent
  });

  it("NONE reads the live paths and creates nothing", async () => {
    const config = testConfig(root, [guest("none")], { stagingDir: join(root, "staging-none") });
    const driver = createDirDriver({ config, runner: createRecordingRunner(), log: silentLogger(), clock });
    const g = config.guests[0]!;
    assert.equal(driver.modeFor(g), SnapshotMode.SNAPSHOT_MODE_NONE);
    const handle = await driver.snapshot({ jobId: jobId(2), guest: g, signal: new AbortController().signal });
    assert.equal(handle.mode, SnapshotMode.SNAPSHOT_MODE_NONE);
    assert.deepEqual(handle.artifacts, []);
    for (const v of handle.volumes) assert.equal(v.readPath, v.sourcePath);
    await assert.rejects(stat(config.stagingDir), { code: "ENOENT" });
    await driver.release(handle);
  });

  it("a missing volume fails with LULL_E_SNAPSHOT_FAILED naming the path, leaving nothing", async () => {
    const missing = join(root, "src", "gone");
    const config = testConfig(root, [{ id: "102", driver: "dir", volumes: [{ name: "x", path: missing }] }], {
      stagingDir: join(root, "staging-missing"),
    });
    const driver = createDirDriver({ config, runner: createExecaRunner(), log: silentLogger(), clock });
    await assert.rejects(
      driver.snapshot({ jobId: jobId(3), guest: config.guests[0]!, signal: new AbortController().signal }),
      (err: unknown) => err instanceof LullError && err.code === "LULL_E_SNAPSHOT_FAILED" && err.message.includes(missing),
    );
    await assert.rejects(stat(config.stagingDir), { code: "ENOENT" });
  });

  it("a copy that runs out of space is LULL_E_NO_SPACE and the staging dir is removed", async () => {
    const config = testConfig(root, [guest("copy")], { stagingDir: join(root, "staging-full") });
    const runner = createRecordingRunner({
      delegate: createExecaRunner(),
      reply: (call) =>
        call.args.at(-1)?.endsWith("/db") ? { exitCode: 1, stderr: "cp: error writing 'x': No space left on device\n" } : undefined,
    });
    const driver = createDirDriver({ config, runner, log: silentLogger(), clock });
    await assert.rejects(
      driver.snapshot({ jobId: jobId(4), guest: config.guests[0]!, signal: new AbortController().signal }),
      (err: unknown) => err instanceof LullError && err.code === "LULL_E_NO_SPACE",
    );
    assert.equal(runner.callsOf("cp").length, 2, "the first volume was copied before the second failed");
    assert.deepEqual(await readdir(config.stagingDir), []);
  });

  it("a cancelled copy is LULL_E_CANCELLED and leaves no staging dir", async () => {
    const config = testConfig(root, [guest("copy")], { stagingDir: join(root, "staging-cancel") });
    const abort = new AbortController();
    const runner = createRecordingRunner({
      delegate: createExecaRunner(),
      reply: (call) => {
        if (call.args.at(-1)?.endsWith("/db")) abort.abort(new Error("operator cancelled"));
        return undefined;
      },
    });
    const driver = createDirDriver({ config, runner, log: silentLogger(), clock });
    await assert.rejects(
      driver.snapshot({ jobId: jobId(8), guest: config.guests[0]!, signal: abort.signal }),
      (err: unknown) => err instanceof LullError && err.code === "LULL_E_CANCELLED",
    );
    assert.deepEqual(await readdir(config.stagingDir), []);
  });

  it("sweep removes every prefixed leftover (or only one job's) and leaves foreign entries", async () => {
    const config = testConfig(root, [guest("copy")], { stagingDir: join(root, "staging-sweep") });
    const driver = createDirDriver({ config, runner: createExecaRunner(), log: silentLogger(), clock });
    for (const n of [5, 6, 7]) {
      await mkdir(join(config.stagingDir, `lull-${jobId(n)}`, "app", "ro"), { recursive: true });
      await writeFile(join(config.stagingDir, `lull-${jobId(n)}`, "app", "ro", "f"), "x");
    }
    await mkdir(join(config.stagingDir, "operator-notes"));
    await writeFile(join(config.stagingDir, "lullaby.txt"), "not ours: no dash after lull");

    assert.deepEqual(await driver.sweep(config.guests, { jobId: jobId(6) }), [join(config.stagingDir, `lull-${jobId(6)}`)]);
    const removed = await driver.sweep(config.guests);
    assert.deepEqual(removed.sort(), [5, 7].map((n) => join(config.stagingDir, `lull-${jobId(n)}`)));
    assert.deepEqual((await readdir(config.stagingDir)).sort(), ["lullaby.txt", "operator-notes"]);
    assert.deepEqual(await driver.sweep(config.guests), []);
  });
});
