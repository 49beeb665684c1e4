// The fake LVM and ZFS tools print what the real ones print and fail like them.
import assert from "node:assert/strict";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, beforeEach, describe, it } from "node:test";
import { createFakeNode, runTool, type FakeNode } from "./fake-node.js";

let node: FakeNode;

beforeEach(async () => {
  node = await createFakeNode();
  node.pve.addContainer(101, { rootfs: { storage: "local-lvm", files: { "a.txt": "A" } }, mps: [{ storage: "local-zfs", mp: "/srv", backup: true, files: { "b.txt": "B" } }] });
});
afterEach(async () => {
  await node.cleanup();
});

describe("fake lvcreate / lvchange / lvremove / lvs", () => {
  it("takes a thin snapshot with the activation-skip flag, activates it only with -K, removes it", async () => {
    const created = await runTool(node.pve, "lvcreate", ["-n", "lull-vm-101-disk-0-j1", "-pr", "-s", "pve/vm-101-disk-0"]);
    assert.equal(created.exitCode, 0, created.stderr);
    assert.equal(created.stdout, '  Logical volume "lull-vm-101-disk-0-j1" created.\n');
    const attr = async () =>
      (await runTool(node.pve, "lvs", ["--noheadings", "-o", "lv_attr,origin,pool_lv", "--separator", ":", "pve/lull-vm-101-disk-0-j1"])).stdout;
    assert.equal(await attr(), "  Vri---tz-k:vm-101-disk-0:data\n");
    await runTool(node.pve, "lvchange", ["-ay", "pve/lull-vm-101-disk-0-j1"]);
    assert.equal(await attr(), "  Vri---tz-k:vm-101-disk-0:data\n", "plain -ay ignores a skip-flagged LV");
    await runTool(node.pve, "lvchange", ["-ay", "-K", "pve/lull-vm-101-disk-0-j1"]);
    assert.equal(await attr(), "  Vri-a-tz-k:vm-101-disk-0:data\n");
    const removed = await runTool(node.pve, "lvremove", ["-f", "pve/lull-vm-101-disk-0-j1"]);
    assert.equal(removed.stdout, '  Logical volume "lull-vm-101-disk-0-j1" successfully removed.\n');
    const gone = await runTool(node.pve, "lvs", ["pve/lull-vm-101-disk-0-j1"]);
    assert.equal(gone.exitCode, 5);
    assert.equal(gone.stderr, '  Failed to find logical volume "pve/lull-vm-101-disk-0-j1"\n');
  });

  it("fails like LVM: existing name, unknown origin, unknown VG, full pool (exit 5)", async () => {
    await runTool(node.pve, "lvcreate", ["-n", "s1", "-pr", "-s", "pve/vm-101-disk-0"]);
    const exists = await runTool(node.pve, "lvcreate", ["-n", "s1", "-pr", "-s", "pve/vm-101-disk-0"]);
    assert.deepEqual([exists.exitCode, exists.stderr], [5, '  Logical Volume "s1" already exists in volume group "pve"\n']);
    const origin = await runTool(node.pve, "lvcreate", ["-n", "s2", "-pr", "-s", "pve/vm-999-disk-0"]);
    assert.deepEqual([origin.exitCode, origin.stderr], [5, '  Failed to find logical volume "pve/vm-999-disk-0"\n']);
    const vg = await runTool(node.pve, "lvs", ["nope"]);
    assert.deepEqual([vg.exitCode, vg.stderr], [5, '  Volume group "nope" not found\n  Cannot process volume group nope\n']);
    node.pve.setThinPoolUsage("pve", "data", { dataPercent: 100 });
    const full = await runTool(node.pve, "lvcreate", ["-n", "s3", "-pr", "-s", "pve/vm-101-disk-0"]);
    assert.deepEqual([full.exitCode, full.stderr], [5, "  Cannot create new thin volume, free space in thin pool pve/data reached threshold.\n"]);
    const pool = await runTool(node.pve, "lvs", ["--noheadings", "-o", "lv_attr", "pve/data"]);
    assert.equal(pool.stdout, "  twi-aotzD-\n", "health column D: out of data space");
  });

  it("prints Proxmox's listing format (bytes, no suffix, epoch time) and JSON", async () => {
    const r = await runTool(node.pve, "lvs", [
      "--separator", ":", "--noheadings", "--units", "b", "--unbuffered", "--nosuffix",
      "--config", 'report/time_format="%s"',
      "--options", "vg_name,lv_name,lv_size,lv_attr,pool_lv,data_percent,metadata_percent,snap_percent,uuid,tags,metadata_size,time",
      "pve",
    ]);
    assert.equal(r.exitCode, 0, r.stderr);
    const rows = r.lines.map((l) => l.split(":"));
    const pool = rows.find((f) => f[1] === "data")!;
    assert.equal(pool[0], "  pve");
    assert.equal(pool[2], String(100 * 1024 ** 3));
    assert.equal(pool[3], "twi-aotz--");
    assert.deepEqual([pool[5], pool[6]], ["12.50", "3.25"]);
    assert.match(pool[8]!, /^\w{6}(-\w{4}){5}-\w{6}$/);
    assert.match(pool[11]!, /^\d{10}$/);
    const json = JSON.parse((await runTool(node.pve, "lvs", ["--reportformat", "json", "-o", "lv_name,data_percent,metadata_percent", "pve/data"])).stdout);
    assert.deepEqual(json.report[0].lv, [{ lv_name: "data", data_percent: "12.50", metadata_percent: "3.25" }]);
  });
});

describe("fake zfs", () => {
  it("one multi-argument snapshot is all or nothing; readable under .zfs/snapshot; destroy", async () => {
    const ds = "rpool/data/subvol-101-disk-1";
    const bad = await runTool(node.pve, "zfs", ["snapshot", `${ds}@lull-j1`, "rpool/data/nope@lull-j1"]);
    assert.equal(bad.exitCode, 1);
    assert.equal(bad.stderr, "cannot create snapshot 'rpool/data/nope@lull-j1': dataset does not exist\nno snapshots were created\n");
    assert.deepEqual(node.pve.zfsSnapshots(), []);
    const ok = await runTool(node.pve, "zfs", ["snapshot", `${ds}@lull-j1`, `rpool/data@lull-j1`]);
    assert.equal(ok.exitCode, 0, ok.stderr);
    const mount = join(node.dir, "zfs", "rpool", "data", "subvol-101-disk-1");
    writeFileSync(join(mount, "b.txt"), "changed");
    assert.equal(readFileSync(join(mount, ".zfs", "snapshot", "lull-j1", "b.txt"), "utf8"), "B");
    const again = await runTool(node.pve, "zfs", ["snapshot", `${ds}@lull-j1`]);
    assert.deepEqual([again.exitCode, again.stderr], [1, `cannot create snapshot '${ds}@lull-j1': dataset already exists\n`]);
    const list = await runTool(node.pve, "zfs", ["list", "-H", "-p", "-t", "snapshot", "-o", "name,creation"]);
    const rows = list.lines.map((l) => l.split("\t"));
    assert.deepEqual(rows.map((r) => r[0]).sort(), [`${ds}@lull-j1`, "rpool/data@lull-j1"]);
    assert.match(rows[0]![1]!, /^\d{10}$/);
    assert.equal(rows[0]![1], rows[1]![1], "taken at the same instant");
    const destroyed = await runTool(node.pve, "zfs", ["destroy", `${ds}@lull-j1`]);
    assert.equal(destroyed.exitCode, 0);
    assert.ok(!existsSync(join(mount, ".zfs", "snapshot", "lull-j1")));
    const missing = await runTool(node.pve, "zfs", ["destroy", `${ds}@lull-j1`]);
    assert.deepEqual([missing.exitCode, missing.stderr], [1, "could not find any snapshots to destroy; check snapshot names.\n"]);
    const none = await runTool(node.pve, "zfs", ["list", "-H", "-t", "snapshot", ds]);
    assert.deepEqual([none.exitCode, none.stdout, none.stderr], [0, "", "no datasets available\n"]);
    const byPath = await runTool(node.pve, "zfs", ["list", "-H", "-o", "name", mount]);
    assert.equal(byPath.stdout, `${ds}\n`);
  });
});

describe("fake pct / qm / pvesh", () => {
  it("prints configs, status and guest lists; fails on unknown guests", async () => {
    node.pve.addVm(100, { name: "db", disks: [{ key: "scsi0", storage: "local-lvm" }] });
    const cfg = await runTool(node.pve, "pct", ["config", "101"]);
    assert.ok(cfg.lines.includes("rootfs: local-lvm:vm-101-disk-0,size=8G"), cfg.stdout);
    assert.deepEqual([...cfg.lines].sort(), cfg.lines, "sorted keys");
    const missing = await runTool(node.pve, "pct", ["config", "999"]);
    assert.deepEqual([missing.exitCode, missing.stderr], [255, "Configuration file 'nodes/pve1/lxc/999.conf' does not exist\n"]);
    assert.equal((await runTool(node.pve, "qm", ["status", "100"])).stdout, "status: running\n");
    const list = JSON.parse((await runTool(node.pve, "pvesh", ["get", "/nodes/pve1/qemu", "--output-format", "json"])).stdout);
    assert.deepEqual(list.map((g: { vmid: number; name: string; status: string }) => [g.vmid, g.name, g.status]), [[100, "db", "running"]]);
    const other = await runTool(node.pve, "pvesh", ["get", "/nodes/pve9/lxc", "--output-format", "json"]);
    assert.equal(other.exitCode, 255);
    assert.equal((await runTool(node.pve, "pvesm", ["path", "local-zfs:subvol-101-disk-1"])).stdout, `${join(node.dir, "zfs", "rpool", "data", "subvol-101-disk-1")}\n`);
    assert.equal((await runTool(node.pve, "pvesm", ["path", "local-lvm:vm-101-disk-0"])).stdout, "/dev/pve/vm-101-disk-0\n");
  });
});
