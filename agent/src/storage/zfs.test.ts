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
  "tank\tfilesystem\t/tank",
  "tank/ct101-logs\tfilesystem\t/tank/ct101-logs",
].join("\n");

const guest: GuestConfig = {
  id: "101",
  engine: "native",
  driver: "zfs",
  volumes: [
    { name: "root", path: "/rpool/data/subvol-101-disk-0" },
    { name: "data", path: "/srv/ct101-data/" },
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
    assert.deepEqual(snapshots[0]!.args, ["snapshot", `rpool/data/subvol-101-disk-0@lull-${JOB}`, `rpool/data/subvol-101-disk-1@lull-${JOB}`]);
    assert.deepEqual(handle.volumes.map((v) => v.readPath), [`/rpool/data/subvol-101-disk-0/.zfs/snapshot/lull-${JOB}`, `/srv/ct101-data/.zfs/snapshot/lull-${JOB}`]);
    assert.equal(handle.notes, undefined, "one pool: one point in time, nothing to say");
    runner.clear();
    await driver.release(handle);
    assert.deepEqual(runner.argvs(), handle.artifacts.map((a) => ["zfs", "destroy", a]));
  });

  it("a guest on two pools: one zfs snapshot per pool (lzc_snapshot stays within a pool) and a note saying what atomicity that gives", async () => {
    const runner = createRecordingRunner({ reply });
    const driver = createZfsDriver(deps(runner));
    const twoPools = { ...guest, volumes: [...guest.volumes, { name: "logs", path: "/tank/ct101-logs" }] };
    const handle = await driver.snapshot({ jobId: JOB, guest: twoPools, signal: new AbortController().signal });
    assert.deepEqual(
      runner.callsOf("zfs").filter((c) => c.args[0] === "snapshot").map((c) => c.args),
      [
        ["snapshot", `rpool/data/subvol-101-disk-0@lull-${JOB}`, `rpool/data/subvol-101-disk-1@lull-${JOB}`],
        ["snapshot", `tank/ct101-logs@lull-${JOB}`],
      ],
    );
    assert.equal(handle.artifacts.length, 3);
    assert.equal(handle.notes?.length, 1);
    assert.match(handle.notes![0]!, /^guest 101 spans ZFS pools rpool, tank: each pool's volumes were snapshotted atomically together, the pools one after the other \(\d+ ms from the first to the last\) — not one point in time across pools/);
  });

  it("refuses a zvol in preflight with the reason (tar would store a device node, not the data) and snapshots nothing", async () => {
    const runner = createRecordingRunner({ reply });
    const driver = createZfsDriver(deps(runner));
    const vm = { ...guest, volumes: [{ name: "disk", path: "/dev/zvol/rpool/data/vm-100-disk-0" }] };
    for (const call of [driver.preflight!({ jobId: JOB, guest: vm, signal: new AbortController().signal }), driver.snapshot({ jobId: JOB, guest: vm, signal: new AbortController().signal })]) {
      await assert.rejects(call, (e: unknown) => {
        assert.ok(e instanceof LullError && e.code === "LULL_E_CONFIG_INVALID", String(e));
        assert.match(e.message, /^volume disk is the zvol rpool\/data\/vm-100-disk-0 \(a block device\): the native engine archives files with tar, which stores a block device as a device node and not its data — back up this VM with the vzdump engine/);
        return true;
      });
    }
    assert.equal(runner.callsOf("zfs").filter((c) => c.args[0] === "snapshot").length, 0);
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
