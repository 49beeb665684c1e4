// The storage drivers that run Proxmox-node tools (lvmthin, zfs) against the fake Proxmox toolbox:
// the snapshots really exist (and are readable for ZFS subvols) between snapshot() and release(),
// with the argv the Proxmox reference gives. (Here, not in storage/: storage never imports pve/.)
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, beforeEach, describe, it } from "node:test";
import { LullError, silentLogger, systemClock } from "@lull/shared";
import { agentConfigSchema, type GuestConfig } from "../config.js";
import { startFakePveNode, type FakePveNode } from "./testing/fake-pve.js";
import { createLvmThinDriver } from "../storage/lvmthin.js";
import { createZfsDriver } from "../storage/zfs.js";

const JOB = "j-0000000000000000000000000a";
let node: FakePveNode;

function deps() {
  return { config: agentConfigSchema.parse({ dataDir: node.dir, archiveDir: node.dir, stagingDir: node.dir }), runner: node.runner, log: silentLogger(), clock: systemClock };
}

beforeEach(async () => {
  node = await startFakePveNode();
  node.pve.addContainer(101, {
    rootfs: { storage: "local-lvm", files: { "etc/hostname": "ct101\n" } },
    mps: [
      { storage: "local-zfs", mp: "/srv/a", backup: true, files: { "a.txt": "A1" } },
      { storage: "local-zfs", mp: "/srv/b", backup: true, files: { "b.txt": "B1" } },
    ],
  });
});
afterEach(async () => {
  await node.close();
});

describe("storage drivers on the fake toolbox", () => {
  it("zfs: one atomic snapshot of both subvols, readable under .zfs/snapshot while the live data changes", async () => {
    const root = join(node.dir, "zfs", "rpool", "data");
    const guest: GuestConfig = {
      id: "101",
      engine: "native",
      driver: "zfs",
      volumes: [
        { name: "a", path: join(root, "subvol-101-disk-1") },
        { name: "b", path: join(root, "subvol-101-disk-2") },
      ],
    };
    const driver = createZfsDriver(deps());
    const handle = await driver.snapshot({ jobId: JOB, guest, signal: new AbortController().signal });
    writeFileSync(join(root, "subvol-101-disk-1", "a.txt"), "A2");
    assert.equal(readFileSync(join(handle.volumes[0]!.readPath, "a.txt"), "utf8"), "A1");
    assert.equal(readFileSync(join(handle.volumes[1]!.readPath, "b.txt"), "utf8"), "B1");
    const snaps = node.pve.calls("zfs").filter((c) => c.args[0] === "snapshot");
    assert.deepEqual(snaps.map((c) => c.args), [["snapshot", `rpool/data/subvol-101-disk-1@lull-${JOB}`, `rpool/data/subvol-101-disk-2@lull-${JOB}`]]);
    await driver.release(handle);
    assert.deepEqual(node.pve.zfsSnapshots(), []);
    await driver.release(handle); // idempotent
  });

  it("zfs: a guest on two pools gets one snapshot per pool (the fake refuses a cross-pool call as lzc_snapshot's EXDEV), readable, with the atomicity noted", async () => {
    node.pve.addZfsStorage("tank-zfs", { pool: "tank", mountRoot: join(node.dir, "zfs") });
    node.pve.addContainer(102, {
      rootfs: { storage: "local-zfs", files: { "etc/hostname": "ct102\n" } },
      mps: [{ storage: "tank-zfs", mp: "/srv/logs", backup: true, files: { "l.txt": "L1" } }],
    });
    const cross = await node.runner.run("zfs", ["snapshot", "rpool/data/subvol-102-disk-0@x", "tank/subvol-102-disk-1@x"], { reject: false });
    assert.equal(cross.exitCode, 1);
    assert.equal(cross.stderr.trim(), "cannot create snapshots : multiple snapshots of same fs not allowed");
    const guest: GuestConfig = {
      id: "102",
      engine: "native",
      driver: "zfs",
      volumes: [
        { name: "root", path: join(node.dir, "zfs", "rpool", "data", "subvol-102-disk-0") },
        { name: "logs", path: join(node.dir, "zfs", "tank", "subvol-102-disk-1") },
      ],
    };
    node.runner.clear();
    const driver = createZfsDriver(deps());
    const handle = await driver.snapshot({ jobId: JOB, guest, signal: new AbortController().signal });
    assert.deepEqual(
      node.runner.argvs().filter((a) => a[0] === "zfs" && a[1] === "snapshot"),
      [
        ["zfs", "snapshot", `rpool/data/subvol-102-disk-0@lull-${JOB}`],
        ["zfs", "snapshot", `tank/subvol-102-disk-1@lull-${JOB}`],
      ],
    );
    assert.equal(readFileSync(join(handle.volumes[1]!.readPath, "l.txt"), "utf8"), "L1");
    assert.match(handle.notes?.[0] ?? "", /^guest 102 spans ZFS pools rpool, tank: /);
    await driver.release(handle);
    assert.deepEqual(node.pve.zfsSnapshots(), []);
  });

  it("lvmthin: guard, lvcreate -pr -s and lvchange -ay -K, then lvremove -f; a full pool is refused by the guard", async () => {
    const guest: GuestConfig = { id: "101", engine: "native", driver: "lvmthin", volumes: [{ name: "root", path: "/dev/pve/vm-101-disk-0" }] };
    const driver = createLvmThinDriver(deps());
    const handle = await driver.snapshot({ jobId: JOB, guest, signal: new AbortController().signal });
    const snap = node.pve.lvs().find((lv) => lv.name === `lull-vm-101-disk-0-${JOB}`);
    assert.ok(snap);
    assert.deepEqual([snap.origin, snap.readOnly, snap.skipActivation, snap.active], ["vm-101-disk-0", true, true, true]);
    assert.deepEqual(
      node.pve.calls().filter((c) => c.tool === "lvcreate" || c.tool === "lvchange").map((c) => [c.tool, ...c.args]),
      [
        ["lvcreate", "-n", `lull-vm-101-disk-0-${JOB}`, "-pr", "-s", "pve/vm-101-disk-0"],
        ["lvchange", "-ay", "-K", `pve/lull-vm-101-disk-0-${JOB}`],
      ],
    );
    assert.equal(handle.volumes[0]!.readPath, `/dev/pve/lull-vm-101-disk-0-${JOB}`);
    await driver.release(handle);
    assert.ok(!node.pve.lvs().some((lv) => lv.name.startsWith("lull-")));

    node.pve.setThinPoolUsage("pve", "data", { metadataPercent: 71 });
    await assert.rejects(driver.snapshot({ jobId: JOB, guest, signal: new AbortController().signal }), (e: unknown) => {
      assert.ok(e instanceof LullError && e.code === "LULL_E_SNAPSHOT_FAILED");
      assert.match(e.message, /thin pool pve\/data is too full to snapshot safely: data 12\.50% \(limit 80%\), metadata 71\.00% \(limit 70%\)/);
      return true;
    });
    assert.ok(!node.pve.lvs().some((lv) => lv.name.startsWith("lull-")));
  });
});
