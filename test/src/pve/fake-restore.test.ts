// The fake toolbox's restore side as the real tools behave (README "Restore, destroy, next id,
// backup content"): the create lock while `pct restore` runs, the existing-vmid refusals, SIGTERM
// removing what the restore made and SIGKILL leaving it locked, destroy's refusals, nextid as a
// JSON string, the content listing's fields, and deletion through pvesh.
import assert from "node:assert/strict";
import { readdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { createFakeNode, runTool, startTool, type FakeNode } from "./fake-node.js";

let node: FakeNode;
let archive: string;

before(async () => {
  node = await createFakeNode();
  node.pve.addContainer(101, { hostname: "web01", status: "stopped", rootfs: { storage: "local-lvm", files: { "etc/hostname": "web01\n" } } });
  const r = await runTool(node.pve, "vzdump", ["101", "--storage", "local", "--compress", "zstd", "--mode", "stop"]);
  assert.equal(r.exitCode, 0, r.stderr);
  archive = `local:backup/${readdirSync(node.dumpDir).find((f) => f.endsWith(".tar.zst"))!}`;
});
after(() => node?.cleanup());

const lvNames = () => node.pve.lvs().map((lv) => lv.name);

describe("fake pct restore / qm destroy / pvesh nextid and content", () => {
  it("pct restore refuses an existing vmid (check_vmid_unused), a running one even with --force, and a missing archive", async () => {
    const taken = await runTool(node.pve, "pct", ["restore", "101", archive]);
    assert.deepEqual([taken.exitCode, taken.stderr], [255, "CT 101 already exists on node 'pve1'\n"]);
    node.pve.setGuest(101, { status: "running" });
    const running = await runTool(node.pve, "pct", ["restore", "101", archive, "--force", "1"]);
    assert.deepEqual([running.exitCode, running.stderr], [255, "can't overwrite running container\n"]);
    node.pve.setGuest(101, { status: "stopped" });
    const missing = await runTool(node.pve, "pct", ["restore", "150", "local:backup/vzdump-lxc-1-2020_01_01-00_00_00.tar"]);
    assert.equal(missing.exitCode, 255);
    assert.match(missing.stderr, /^can't find file '.*vzdump-lxc-1-2020_01_01-00_00_00\.tar'\n$/);
  });

  it("holds `lock: create` while restoring; SIGTERM removes config and volume (`interrupted by signal`), SIGKILL leaves both", async () => {
    node.pve.setFaults({ slowRestore: { delayMs: 20_000 } });
    try {
      const term = startTool(node.pve, "pct", ["restore", "120", archive]);
      await term.waitForLine(/^extracting archive/);
      assert.equal(node.pve.guest(120)!.lock, "create");
      assert.ok(lvNames().includes("vm-120-disk-0"));
      const locked = await runTool(node.pve, "pct", ["destroy", "120"]);
      assert.deepEqual([locked.exitCode, locked.stderr], [255, "CT is locked (create)\n"]);
      term.child.kill("SIGTERM");
      const ended = await term.result;
      assert.deepEqual([ended.exitCode, ended.stderr], [255, "unable to restore CT 120 - interrupted by signal\n"]);
      assert.equal(node.pve.guest(120), undefined);
      assert.ok(!lvNames().includes("vm-120-disk-0"));

      const kill = startTool(node.pve, "pct", ["restore", "121", archive]);
      await kill.waitForLine(/^extracting archive/);
      kill.child.kill("SIGKILL");
      await kill.result;
      assert.equal(node.pve.guest(121)!.lock, "create", "a killed restore leaves its locked config");
      assert.ok(lvNames().includes("vm-121-disk-0"));
      assert.equal((await runTool(node.pve, "pct", ["unlock", "121"])).exitCode, 0);
      // The volume is not in the config yet (create_disks does not write it): only
      // --destroy-unreferenced-disks finds it.
      const destroyed = await runTool(node.pve, "pct", ["destroy", "121", "--purge", "1", "--destroy-unreferenced-disks", "1"]);
      assert.deepEqual([destroyed.exitCode, destroyed.stdout], [0, "purging CT 121 from related configurations..\n"]);
      assert.ok(!lvNames().includes("vm-121-disk-0"));
    } finally {
      node.pve.setFaults({});
    }
  });

  it("destroy refuses a running guest and a missing one with the real messages", async () => {
    node.pve.addVm(130, { status: "running", disks: [{ key: "scsi0", storage: "local-lvm" }] });
    const vm = await runTool(node.pve, "qm", ["destroy", "130", "--purge", "1"]);
    assert.deepEqual([vm.exitCode, vm.stderr], [255, "VM 130 is running - destroy failed\n"]);
    node.pve.setGuest(101, { status: "running" });
    const ct = await runTool(node.pve, "pct", ["destroy", "101"]);
    assert.deepEqual([ct.exitCode, ct.stderr], [255, "unable to destroy CT 101 - container is running\n"]);
    node.pve.setGuest(101, { status: "stopped" });
    const none = await runTool(node.pve, "qm", ["destroy", "999"]);
    assert.deepEqual([none.exitCode, none.stderr], [255, "Configuration file 'nodes/pve1/qemu-server/999.conf' does not exist\n"]);
  });

  it("nextid is the first free id from 100, a JSON string; a taken --vmid is a parameter error", async () => {
    const json = await runTool(node.pve, "pvesh", ["get", "/cluster/nextid", "--output-format", "json"]);
    assert.equal(json.stdout, '"100"\n');
    node.pve.addContainer(100, { status: "stopped" });
    assert.equal((await runTool(node.pve, "pvesh", ["get", "/cluster/nextid"])).stdout, "102\n");
    const taken = await runTool(node.pve, "pvesh", ["get", "/cluster/nextid", "--vmid", "101"]);
    assert.deepEqual([taken.exitCode, taken.stderr], [255, "400 Parameter verification failed.\nvmid: VM 101 already exists\n"]);
  });

  it("lists a storage's backups with volume_list's fields and deletes one with its notes; a protected one is refused", async () => {
    const list = JSON.parse((await runTool(node.pve, "pvesh", ["get", "/nodes/pve1/storage/local/content", "--content", "backup", "--output-format", "json"])).stdout) as Array<Record<string, unknown>>;
    assert.equal(list.length, 1);
    assert.deepEqual(Object.keys(list[0]!).sort(), ["content", "ctime", "format", "size", "subtype", "vmid", "volid"]);
    assert.deepEqual([list[0]!.volid, list[0]!.format, list[0]!.subtype, list[0]!.vmid, list[0]!.content], [archive, "tar.zst", "lxc", 101, "backup"]);
    const file = join(node.dumpDir, archive.slice("local:backup/".length));
    writeFileSync(`${file}.notes`, "first line\nsecond");
    writeFileSync(`${file}.protected`, "");
    const again = JSON.parse((await runTool(node.pve, "pvesh", ["get", "/nodes/pve1/storage/local/content", "--output-format", "json"])).stdout) as Array<Record<string, unknown>>;
    assert.deepEqual([again[0]!.notes, again[0]!.protected], ["first line", 1]);
    const refused = await runTool(node.pve, "pvesh", ["delete", `/nodes/pve1/storage/local/content/${archive}`]);
    assert.deepEqual([refused.exitCode, refused.stderr], [255, `cannot remove protected volume '${archive.slice("local:".length)}' on 'local'\n`]);
    rmSync(`${file}.protected`);
    const removed = await runTool(node.pve, "pvesh", ["delete", `/nodes/pve1/storage/local/content/${archive}`]);
    assert.deepEqual([removed.exitCode, removed.stdout], [0, `Removed volume '${archive}'\n`]);
    assert.deepEqual(readdirSync(node.dumpDir).filter((f) => f.startsWith("vzdump-lxc-101-")), []);
  });
});
