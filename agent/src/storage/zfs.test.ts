import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { LullError, silentLogger, systemClock } from "@lull/shared";
import { agentConfigSchema, type GuestConfig } from "../config.js";
import { createRecordingRunner, type RecordedCall } from "@lull/shared/testing";
import { createZfsDriver, datasetForPath, parseDatasets } from "./zfs.js";

const JOB = "j-0123456789abcdefghijklmnop";
let dir: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "lull-zfs-"));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

const LIST = [
  "rpool\tfilesystem\t/rpool",
  "rpool/data\tfilesystem\t/rpool/data",
  "rpool/data/subvol-101-disk-0\tfilesystem\t/rpool/data/subvol-101-disk-0",
  "rpool/data/subvol-101-disk-1\tfilesystem\t/srv/ct101-data",
  "rpool/data/vm-100-disk-0\tvolume\t-",
].join("\n");

const guest: GuestConfig = {
  id: "101",
  engine: "native",
  driver: "zfs",
  volumes: [
    { name: "root", path: "/rpool/data/subvol-101-disk-0" },
    { name: "data", path: "/srv/ct101-data/" },
    { name: "disk", path: "/dev/zvol/rpool/data/vm-100-disk-0" },
  ],
};

function reply(call: RecordedCall) {
  if (call.file === "zfs" && call.args[0] === "list" && call.args.includes("snapshot")) {
    return { stdout: [`rpool/data/subvol-101-disk-0@lull-${JOB}`, "rpool/data/subvol-101-disk-0@vzdump", "rpool/data@lull-j-zzzzzzzzzzzzzzzzzzzzzzzzzz", "rpool/data@daily"].join("\n") };
  }
  if (call.file === "zfs" && call.args[0] === "list") return { stdout: LIST };
  return undefined;
}

function deps(runner = createRecordingRunner({ reply })) {
  return { config: agentConfigSchema.parse({ dataDir: dir, archiveDir: dir, stagingDir: dir }), runner, log: silentLogger(), clock: systemClock };
}

describe("zfs driver", () => {
  it("maps mountpoints and zvol devices to datasets", () => {
    const ds = parseDatasets(LIST);
    assert.equal(datasetForPath("/srv/ct101-data", ds)?.name, "rpool/data/subvol-101-disk-1");
    assert.equal(datasetForPath("/dev/zvol/rpool/data/vm-100-disk-0", ds)?.name, "rpool/data/vm-100-disk-0");
    assert.equal(datasetForPath("/srv/nothing", ds), undefined);
  });

  it("takes one atomic multi-argument zfs snapshot named <prefix><job>, never vzdump", async () => {
    const runner = createRecordingRunner({ reply });
    const driver = createZfsDriver(deps(runner));
    const handle = await driver.snapshot({ jobId: JOB, guest, signal: new AbortController().signal });
    const snapshots = runner.callsOf("zfs").filter((c) => c.args[0] === "snapshot");
    assert.equal(snapshots.length, 1);
    assert.deepEqual(snapshots[0]!.args, [
      "snapshot",
      `rpool/data/subvol-101-disk-0@lull-${JOB}`,
      `rpool/data/subvol-101-disk-1@lull-${JOB}`,
      `rpool/data/vm-100-disk-0@lull-${JOB}`,
    ]);
    assert.deepEqual(handle.volumes.map((v) => v.readPath), [
      `/rpool/data/subvol-101-disk-0/.zfs/snapshot/lull-${JOB}`,
      `/srv/ct101-data/.zfs/snapshot/lull-${JOB}`,
      `/dev/zvol/rpool/data/vm-100-disk-0@lull-${JOB}`,
    ]);
    runner.clear();
    await driver.release(handle);
    assert.deepEqual(runner.argvs(), handle.artifacts.map((a) => ["zfs", "destroy", a]));
  });

  it("fails with LULL_E_SNAPSHOT_FAILED for a path with no dataset, before snapshotting anything", async () => {
    const runner = createRecordingRunner({ reply });
    const driver = createZfsDriver(deps(runner));
    const bad = { ...guest, volumes: [{ name: "x", path: "/srv/elsewhere" }] };
    await assert.rejects(driver.snapshot({ jobId: JOB, guest: bad, signal: new AbortController().signal }), (e: unknown) => {
      assert.ok(e instanceof LullError && e.code === "LULL_E_SNAPSHOT_FAILED");
      assert.match(e.message, /no ZFS dataset is mounted at \(or is the zvol of\) \/srv\/elsewhere/);
      return true;
    });
    assert.equal(runner.callsOf("zfs").filter((c) => c.args[0] === "snapshot").length, 0);
  });

  it("release treats an already destroyed snapshot as done; sweep destroys only the agent's snapshots", async () => {
    const runner = createRecordingRunner({
      reply: (c) => (c.args[0] === "destroy" && c.args[1]!.endsWith("@gone") ? { exitCode: 1, stderr: "could not find any snapshots to destroy; check snapshot names.\n" } : reply(c)),
    });
    const driver = createZfsDriver(deps(runner));
    await driver.release({ jobId: JOB, mode: 1, createdAt: 0, volumes: [], artifacts: ["rpool/data@gone"] });
    runner.clear();
    const removed = await driver.sweep([]);
    assert.deepEqual(removed, [`rpool/data/subvol-101-disk-0@lull-${JOB}`, "rpool/data@lull-j-zzzzzzzzzzzzzzzzzzzzzzzzzz"]);
    runner.clear();
    await driver.sweep([], { jobId: JOB });
    assert.deepEqual(runner.argvs().filter((a) => a[1] === "destroy"), [["zfs", "destroy", `rpool/data/subvol-101-disk-0@lull-${JOB}`]]);
  });
});
