// The native engine end to end with fake hooks: real dir copies, real btrfs snapshots on a
// loop-mounted image, real tar and zstd.
import assert from "node:assert/strict";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { Consistency, SnapshotMode } from "@lull/proto";
import { LullError, silentLogger } from "@lull/shared";
import type { AgentConfig } from "../../config.js";
import { createExecaRunner } from "@lull/shared";
import { SNAPSHOTS_DIR } from "../../storage/btrfs.js";
import { storageKinds } from "../../storage/index.js";
import { jobId, testConfig } from "../../storage/testing/config.js";
import { createLoopBtrfs, createSubvolume, type LoopMount } from "../../storage/testing/loop-btrfs.js";
import { extractArchive, listTree, makeSampleTree, writeRandomFile } from "../../storage/testing/tree.js";
import type { EngineHooks } from "../engine.js";
import { createNativeEngine } from "./engine.js";

interface RecordingHooks extends EngineHooks {
  calls: { name: string; args: unknown[] }[];
  names(): string[];
}

/** Fake hooks: record every call; `on` runs test code at a hook (the moment a stack would resume). */
function recordingHooks(on: Partial<Record<keyof EngineHooks, (...args: unknown[]) => void>> = {}, quiesce?: () => Promise<Consistency>): RecordingHooks {
  const calls: { name: string; args: unknown[] }[] = [];
  const record = (name: keyof EngineHooks) => (...args: unknown[]) => {
    calls.push({ name, args });
    on[name]?.(...args);
  };
  return {
    calls,
    names: () => calls.map((c) => c.name).filter((n, i, all) => n !== "progress" || all[i - 1] !== "progress"),
    quiesce: async () => {
      calls.push({ name: "quiesce", args: [] });
      return quiesce ? quiesce() : Consistency.CONSISTENCY_APP;
    },
    snapshotting: record("snapshotting"),
    snapshotted: record("snapshotted"),
    archiving: record("archiving"),
    progress: record("progress"),
    note: record("note"),
  };
}

function engineFor(config: AgentConfig) {
  return createNativeEngine({ config, runner: createExecaRunner(), log: silentLogger(), progressIntervalMs: 0 });
}

function runOf(config: AgentConfig, job: string, hooks: EngineHooks, signal = new AbortController().signal) {
  return { jobId: job, guest: config.guests[0]!, hooks, signal, log: silentLogger() };
}

function assertProgress(hooks: RecordingHooks): number {
  const total = (hooks.calls.find((c) => c.name === "archiving")!.args[0] as { bytesTotal: number }).bytesTotal;
  const progress = hooks.calls.filter((c) => c.name === "progress").map((c) => c.args as [number, number]);
  for (let i = 1; i < progress.length; i++) assert.ok(progress[i]![0] > progress[i - 1]![0], "monotonic");
  assert.ok(progress.every(([d, t]) => d <= total && t === total));
  assert.deepEqual(progress.at(-1), [total, total]);
  return total;
}

describe("native engine", () => {
  let root: string;
  let fs: LoopMount;
  before(async () => {
    root = await mkdtemp(join(tmpdir(), "lull-native-"));
    await makeSampleTree(join(root, "src", "app"), "app");
    await writeRandomFile(join(root, "src", "app", "blob.bin"), 2 * 1024 * 1024);
    fs = await createLoopBtrfs();
    await createSubvolume(join(fs.path, "app"));
    await makeSampleTree(join(fs.path, "app"), "btrfs");
  });
  after(async () => {
    await rm(root, { recursive: true, force: true });
    await fs?.dispose();
  });

  const dirGuest = (snapshot: "copy" | "none") => ({
    id: "101",
    driver: "dir",
    snapshot,
    volumes: [{ name: "app", path: join(root, "src", "app") }],
  });

  it("dir COPY: quiesce → snapshotting → snapshotted → archiving → progress; writes after snapshotted are not in the archive", async () => {
    const config = testConfig(root, [dirGuest("copy")]);
    const source = join(root, "src", "app");
    const before = await listTree(source);
    const started = Date.now();
    // At `snapshotted` the controller restarts the stack, which writes at once (hooks are synchronous).
    const hooks = recordingHooks({ snapshotted: () => writeFileSync(join(source, "config.yml"), "written after resume\n") });
    const result = await engineFor(config).run(runOf(config, jobId(1), hooks));

    assert.deepEqual(hooks.names(), ["quiesce", "snapshotting", "snapshotted", "archiving", "progress"]);
    assert.equal(hooks.calls[1]!.args[0], SnapshotMode.SNAPSHOT_MODE_COPY);
    const snapshotted = hooks.calls[2]!.args[0] as { mode: SnapshotMode; snapshotAt: number };
    assert.equal(snapshotted.mode, SnapshotMode.SNAPSHOT_MODE_COPY);
    assert.ok(snapshotted.snapshotAt >= started && snapshotted.snapshotAt <= Date.now());
    assert.ok(assertProgress(hooks) > 2 * 1024 * 1024);

    const restored = join(root, "restored-copy");
    await extractArchive(result.archivePath, restored);
    assert.deepEqual(await listTree(join(restored, "app")), before);
    assert.equal(await readFile(join(restored, "app", "config.yml"), "utf8"), "name: app\n");
    assert.deepEqual(await readdir(config.stagingDir), [], "staging copy released");
    await writeFile(join(source, "config.yml"), "name: app\n");
  });

  it("dir NONE: no snapshotting and no snapshotted; the live paths are archived", async () => {
    const config = testConfig(root, [dirGuest("none")], { archiveDir: join(root, "archives-none") });
    const hooks = recordingHooks();
    const result = await engineFor(config).run(runOf(config, jobId(2), hooks));
    assert.deepEqual(hooks.names(), ["quiesce", "archiving", "progress"]);
    assert.equal((hooks.calls[1]!.args[0] as { mode: SnapshotMode }).mode, SnapshotMode.SNAPSHOT_MODE_NONE);
    assertProgress(hooks);
    const restored = join(root, "restored-none");
    await extractArchive(result.archivePath, restored);
    assert.deepEqual(await listTree(join(restored, "app")), await listTree(join(root, "src", "app")));
  });

  it("btrfs SNAPSHOT: hooks in order, the archive holds the snapshot's content, the snapshot is removed", async () => {
    const source = join(fs.path, "app");
    const config = testConfig(root, [{ id: "201", driver: "btrfs", volumes: [{ name: "app", path: source }] }], {
      archiveDir: join(root, "archives-btrfs"),
    });
    const snapshotDir = join(fs.path, SNAPSHOTS_DIR, `lull-${jobId(3)}`);
    let existedAtSnapshotted = false;
    const hooks = recordingHooks({
      snapshotted: () => {
        existedAtSnapshotted = existsSync(join(snapshotDir, "app", "config.yml"));
        writeFileSync(join(source, "config.yml"), "written after resume\n");
      },
    });
    const result = await engineFor(config).run(runOf(config, jobId(3), hooks));
    assert.ok(existedAtSnapshotted);
    assert.deepEqual(hooks.names(), ["quiesce", "snapshotting", "snapshotted", "archiving", "progress"]);
    assert.equal(hooks.calls[1]!.args[0], SnapshotMode.SNAPSHOT_MODE_SNAPSHOT);
    assertProgress(hooks);
    const restored = join(root, "restored-btrfs");
    await extractArchive(result.archivePath, restored);
    assert.equal(await readFile(join(restored, "app", "config.yml"), "utf8"), "name: btrfs\n");
    await assert.rejects(stat(snapshotDir), { code: "ENOENT" });
  });

  it("btrfs preflight: a volume that is not a subvolume fails the job before any stack is asked to quiesce", async () => {
    const plain = join(fs.path, "not-a-subvolume");
    mkdirSync(plain, { recursive: true });
    const config = testConfig(root, [{ id: "203", driver: "btrfs", volumes: [{ name: "app", path: plain }] }], {
      archiveDir: join(root, "archives-preflight"),
    });
    const hooks = recordingHooks();
    await assert.rejects(engineFor(config).run(runOf(config, jobId(9), hooks)), (err: unknown) => {
      return err instanceof LullError && err.code === "LULL_E_SNAPSHOT_FAILED" && err.message.includes("is not a btrfs subvolume");
    });
    assert.deepEqual(hooks.names(), [], "no hook ran: the stacks were never stopped");
  });

  it("when archiving fails the snapshot is still released: LULL_E_ARCHIVE_FAILED", async () => {
    const blocked = join(root, "archive-dir-is-a-file");
    await writeFile(blocked, "not a directory");
    const config = testConfig(root, [{ id: "201", driver: "btrfs", volumes: [{ name: "app", path: join(fs.path, "app") }] }], {
      archiveDir: blocked,
    });
    const hooks = recordingHooks();
    await assert.rejects(
      engineFor(config).run(runOf(config, jobId(4), hooks)),
      (err: unknown) => err instanceof LullError && err.code === "LULL_E_ARCHIVE_FAILED",
    );
    assert.deepEqual(hooks.names(), ["quiesce", "snapshotting", "snapshotted", "archiving"]);
    await assert.rejects(stat(join(fs.path, SNAPSHOTS_DIR, `lull-${jobId(4)}`)), { code: "ENOENT" });
  });

  it("a consistency group that fails while the member waits in snapshotted: the copy is released, nothing archived", async () => {
    const config = testConfig(root, [dirGuest("copy")], { archiveDir: join(root, "archives-group"), stagingDir: join(root, "staging-group") });
    const hooks = recordingHooks();
    // What a group member's hook does when another member's snapshot failed meanwhile.
    hooks.snapshotted = async () => {
      hooks.calls.push({ name: "snapshotted", args: [] });
      await new Promise((r) => setTimeout(r, 20));
      throw new LullError("LULL_E_GROUP_MEMBER_FAILED", "group run g-x failed before every snapshot existed");
    };
    await assert.rejects(
      engineFor(config).run(runOf(config, jobId(12), hooks)),
      (err: unknown) => err instanceof LullError && err.code === "LULL_E_GROUP_MEMBER_FAILED",
    );
    assert.deepEqual(hooks.names(), ["quiesce", "snapshotting", "snapshotted"]);
    assert.deepEqual(await readdir(config.stagingDir), [], "the staging copy was released");
    assert.deepEqual(await readdir(config.archiveDir).catch(() => []), []);
  });

  it("a cancel during archiving ends LULL_E_CANCELLED with the copy released and no partial archive", async () => {
    const config = testConfig(root, [dirGuest("copy")], { archiveDir: join(root, "archives-cancel"), stagingDir: join(root, "staging-cancel") });
    const abort = new AbortController();
    const hooks = recordingHooks({ progress: () => abort.abort(new Error("operator cancelled")) });
    await assert.rejects(
      engineFor(config).run(runOf(config, jobId(5), hooks, abort.signal)),
      (err: unknown) => err instanceof LullError && err.code === "LULL_E_CANCELLED",
    );
    assert.deepEqual(await readdir(config.stagingDir), []);
    assert.deepEqual(await readdir(config.archiveDir), []);
  });

  it("a progress hook that throws stops the archive (no crash): the copy is released, no partial archive", async () => {
    const config = testConfig(root, [dirGuest("copy")], { archiveDir: join(root, "archives-hookfail"), stagingDir: join(root, "staging-hookfail") });
    const hooks = recordingHooks({
      progress: () => {
        throw new Error("job store closed");
      },
    });
    await assert.rejects(
      engineFor(config).run(runOf(config, jobId(10), hooks)),
      (err: unknown) => err instanceof LullError && err.code === "LULL_E_ARCHIVE_FAILED" && /job store closed/.test(err.message),
    );
    assert.deepEqual(await readdir(config.stagingDir), []);
    assert.deepEqual(await readdir(config.archiveDir), []);
  });

  it("a refused quiesce takes no snapshot and keeps the hook's error", async () => {
    const config = testConfig(root, [dirGuest("copy")], { stagingDir: join(root, "staging-refused") });
    const hooks = recordingHooks({}, async () => {
      throw new LullError("LULL_E_QUIESCE_REFUSED", "stack web refused: migration running");
    });
    await assert.rejects(
      engineFor(config).run(runOf(config, jobId(6), hooks)),
      (err: unknown) => err instanceof LullError && err.code === "LULL_E_QUIESCE_REFUSED",
    );
    assert.deepEqual(hooks.names(), ["quiesce"]);
    await assert.rejects(stat(config.stagingDir), { code: "ENOENT" });
  });

  it("every driver kind is registered; lvmthin where no such LV exists fails the snapshot, naming the lvs call", async () => {
    assert.deepEqual(storageKinds().sort(), ["btrfs", "dir", "lvmthin", "zfs"]);
    const config = testConfig(root, [{ id: "301", driver: "lvmthin", volumes: [{ name: "d", path: "/dev/lull-test-none/data" }] }]);
    await assert.rejects(
      engineFor(config).run(runOf(config, jobId(7), recordingHooks())),
      (err: unknown) => err instanceof LullError && err.code === "LULL_E_SNAPSHOT_FAILED" && /\blvs\b.*lull-test-none\/data/.test(err.message),
    );
  });

  it("sweep removes staging leftovers, btrfs snapshots and partial archives, and returns their names", async () => {
    const config = testConfig(
      root,
      [dirGuest("copy"), { id: "201", driver: "btrfs", volumes: [{ name: "app", path: join(fs.path, "app") }] }],
      { archiveDir: join(root, "archives-sweep"), stagingDir: join(root, "staging-sweep") },
    );
    const staged = join(config.stagingDir, `lull-${jobId(8)}`);
    await mkdir(join(staged, "app"), { recursive: true });
    await mkdir(config.archiveDir, { recursive: true });
    const partial = join(config.archiveDir, `lull-partial-${jobId(8)}.tar.zst`);
    await writeFile(partial, "half");
    const snapDir = join(fs.path, SNAPSHOTS_DIR, `lull-${jobId(9)}`);
    await mkdir(snapDir, { recursive: true });
    await createExecaRunner().run("btrfs", ["subvolume", "snapshot", "-r", join(fs.path, "app"), join(snapDir, "app")], {
      timeoutMs: 60_000,
    });
    const removed = await engineFor(config).sweep(config.guests);
    assert.deepEqual(removed.sort(), [staged, partial, join(snapDir, "app"), snapDir].sort());
    await assert.rejects(stat(snapDir), { code: "ENOENT" });
    assert.deepEqual(await engineFor(config).sweep(config.guests), []);
  });
});
