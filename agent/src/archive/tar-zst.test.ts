import assert from "node:assert/strict";
import { appendFile, mkdir, mkdtemp, readdir, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { execa } from "execa";
import { LullError, type Clock } from "@lull/shared";
import { jobId } from "../storage/testing/config.js";
import { createTinyTmpfs, type LoopMount } from "../storage/testing/loop-btrfs.js";
import { extractArchive, listArchive, listTree, makeSampleTree, writeRandomFile } from "../storage/testing/tree.js";
import { measureTrees } from "./measure.js";
import { createProgressReporter } from "./progress.js";
import { partialArchivePath, sweepPartialArchives, writeArchive, type ArchiveRequest } from "./tar-zst.js";

const TAKEN_AT = Date.UTC(2026, 10, 22, 10, 58, 27, 345);
const clock: Clock = { now: () => Date.now(), sleep: async () => undefined };

function isCode(code: string) {
  return (err: unknown) => err instanceof LullError && err.code === code;
}

describe("tar.zst archive (real tar and zstd)", () => {
  let root: string;
  let app: string;
  let db: string;
  before(async () => {
    root = await mkdtemp(join(tmpdir(), "lull-archive-"));
    app = join(root, "volumes", "app-data");
    db = join(root, "volumes", "postgres");
    await makeSampleTree(app, "app");
    await makeSampleTree(db, "db");
    await writeRandomFile(join(db, "big.bin"), 3 * 1024 * 1024);
  });
  after(async () => rm(root, { recursive: true, force: true }));

  const request = (archiveDir: string, overrides: Partial<ArchiveRequest> = {}): ArchiveRequest => ({
    archiveDir,
    prefix: "lull-",
    guestId: "101",
    jobId: jobId(1),
    zstdLevel: 3,
    volumes: [
      { name: "app", readPath: app },
      { name: "db", readPath: db },
    ],
    takenAt: TAKEN_AT,
    live: false,
    signal: new AbortController().signal,
    ...overrides,
  });

  it("writes one archive per job that restores every volume byte-identical under its name", async () => {
    const archiveDir = join(root, "archives-roundtrip");
    const total = await measureTrees([app, db]);
    const reports: [number, number][] = [];
    const progress = createProgressReporter((d, t) => void reports.push([d, t]), total, { clock, intervalMs: 0 });
    const result = await writeArchive(request(archiveDir, { onBytes: (b) => progress.update(b) }));
    progress.finish();

    assert.equal(result.archivePath, join(archiveDir, "101", `101-20261122T105827Z-${jobId(1)}.tar.zst`));
    assert.equal(result.archiveBytes, (await stat(result.archivePath)).size);
    assert.deepEqual(await readdir(archiveDir), ["101"], "no partial file left");
    const top = new Set((await listArchive(result.archivePath)).map((n) => n.split("/")[0]));
    assert.deepEqual([...top].sort(), ["app", "db"]);

    const restored = join(root, "restored");
    await extractArchive(result.archivePath, restored);
    assert.deepEqual(await listTree(join(restored, "app")), await listTree(app));
    assert.deepEqual(await listTree(join(restored, "db")), await listTree(db));

    assert.ok(total > 3 * 1024 * 1024);
    assert.ok(reports.length >= 2, `expected several progress reports, got ${reports.length}`);
    for (let i = 1; i < reports.length; i++) assert.ok(reports[i]![0] > reports[i - 1]![0], "progress is monotonic");
    assert.ok(reports.every(([d, t]) => t === total && d <= total), "progress never exceeds the total");
    assert.deepEqual(reports.at(-1), [total, total]);
  });

  it("reading live paths tolerates a file that grows while tar reads it; a frozen copy that changes fails", async () => {
    const live = join(root, "live");
    await mkdir(live, { recursive: true });
    await writeRandomFile(join(live, "growing.log"), 8 * 1024 * 1024);
    const volumes = [{ name: "logs", readPath: live }];
    let writing = true;
    const writer = (async () => {
      while (writing) {
        await appendFile(join(live, "growing.log"), "more\n");
        await new Promise((r) => setTimeout(r, 2));
      }
    })();
    try {
      // Without the live options tar exits 1 ("file changed as we read it"): the job must fail.
      await assert.rejects(
        writeArchive(request(join(root, "archives-frozen"), { volumes, live: false })),
        (err: unknown) => isCode("LULL_E_ARCHIVE_FAILED")(err) && /file changed as we read it/.test(String(err)),
      );
      assert.deepEqual(await readdir(join(root, "archives-frozen")), []);
      const result = await writeArchive(request(join(root, "archives-live"), { volumes, live: true }));
      assert.ok((await listArchive(result.archivePath)).includes("logs/growing.log"));
    } finally {
      writing = false;
      await writer;
    }
  });

  it("a block device as a volume (a zvol, an unmounted LV) is refused with the reason, before tar runs: never an archive of a device node", async () => {
    const archiveDir = join(root, "archives-blockdev");
    const node = join(root, "blockdev");
    await execa("mknod", [node, "b", "7", "200"]);
    await assert.rejects(writeArchive(request(archiveDir, { volumes: [{ name: "app", readPath: app }, { name: "disk", readPath: node }] })), (e: unknown) => {
      assert.ok(e instanceof LullError && e.code === "LULL_E_CONFIG_INVALID", String(e));
      assert.equal(e.message, `volume disk: ${node} is a block device; tar would store a device node, not its data — a volume must be a directory (mount the device's filesystem, or back the guest up with the vzdump engine)`);
      return true;
    });
    assert.deepEqual(await readdir(archiveDir).catch(() => []), []);
  });

  it("an abort once tar has written leaves no partial file: LULL_E_CANCELLED (killing a running tar: tar-zst-processes.test.ts)", async () => {
    const archiveDir = join(root, "archives-abort");
    const abort = new AbortController();
    await assert.rejects(
      writeArchive(request(archiveDir, { signal: abort.signal, onBytes: (b) => void (b > 0 && abort.abort(new Error("operator cancelled"))) })),
      isCode("LULL_E_CANCELLED"),
    );
    assert.deepEqual(await readdir(archiveDir), []);
  });

  it("a promise from onBytes holds the archive (backpressure) without blocking the event loop", async () => {
    const archiveDir = join(root, "archives-held");
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let calls = 0;
    let finished = false;
    const writing = writeArchive(request(archiveDir, { onBytes: () => (++calls === 1 ? gate : undefined) })).then((r) => {
      finished = true;
      return r;
    });
    let ticks = 0;
    const timer = setInterval(() => ticks++, 20);
    await new Promise((resolve) => setTimeout(resolve, 600));
    clearInterval(timer);
    assert.equal(finished, false, "held while the promise is pending");
    assert.equal(calls, 1, "no report while held (the first, 0 bytes, comes before tar starts)");
    assert.ok(ticks >= 10, `the event loop kept running (${ticks} ticks)`);
    release();
    const result = await writing;
    assert.ok(calls > 1);
    assert.equal(result.archiveBytes, (await stat(result.archivePath)).size);
  });

  it("a full archive file system is LULL_E_NO_SPACE and leaves no partial file", async () => {
    let tiny: LoopMount | undefined;
    try {
      tiny = await createTinyTmpfs("1M");
      await assert.rejects(writeArchive(request(tiny.path)), isCode("LULL_E_NO_SPACE"));
      assert.deepEqual(await readdir(tiny.path), []);
    } finally {
      await tiny?.dispose();
    }
  });

  it("sweep removes partial archives (all, or one job's) and nothing else", async () => {
    const archiveDir = join(root, "archives-sweep");
    await mkdir(join(archiveDir, "101"), { recursive: true });
    for (const n of [7, 8]) await writeFile(partialArchivePath(archiveDir, "lull-", jobId(n)), "partial");
    await writeFile(join(archiveDir, "101", `101-20261122T105827Z-${jobId(1)}.tar.zst`), "finished");
    await writeFile(join(archiveDir, "notes.txt"), "operator");

    assert.deepEqual(await sweepPartialArchives(archiveDir, "lull-", jobId(7)), [partialArchivePath(archiveDir, "lull-", jobId(7))]);
    assert.deepEqual(await sweepPartialArchives(archiveDir, "lull-"), [partialArchivePath(archiveDir, "lull-", jobId(8))]);
    assert.deepEqual((await readdir(archiveDir)).sort(), ["101", "notes.txt"]);
    assert.deepEqual(await readdir(join(archiveDir, "101")), [`101-20261122T105827Z-${jobId(1)}.tar.zst`]);
    assert.deepEqual(await sweepPartialArchives(join(root, "no-such-dir"), "lull-"), []);
  });
});
