// restoreGuest against the fake Proxmox toolbox: a container and a VM archive made by the fake
// vzdump are restored with `--unique 1` to the next free vmid (new MACs, files back, unlocked);
// an existing vmid is refused without force and overwritten with it; a cancel and a timeout in the
// middle of the extraction leave no guest and no volume; a config a killed restore left under
// `lock: create` is unlocked and destroyed; points that are not vzdump archives are refused.
import assert from "node:assert/strict";
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { Launcher } from "@lull/shared";
import { destroyCreatedGuest, restoreGuest, type GuestRestoreProgress } from "./guest-restore.js";
import { startFakePveNode, type FakePveNode } from "./testing/fake-pve.js";

describe("restoreGuest (fake toolbox)", () => {
  let node: FakePveNode;
  let launcher: Launcher;
  let ctArchive: string;
  let vmArchive: string;
  const deps = () => ({ runner: node.runner, launcher });

  before(async () => {
    node = await startFakePveNode();
    launcher = { launch: (f, a, o) => node.launcher.launch(f, a, { ...o, env: { ...node.env, ...(o.env ?? {}) } }) };
    node.pve.addContainer(101, {
      hostname: "web",
      status: "stopped",
      rootfs: { storage: "local-lvm", files: { "srv/orders.txt": "42 orders\n" } },
      config: { net0: "name=eth0,bridge=vmbr0,hwaddr=BC:24:11:00:00:01,ip=dhcp,type=veth" },
    });
    node.pve.addVm(102, { name: "db", status: "stopped", disks: [{ key: "scsi0", storage: "local-lvm", bytes: Buffer.from("disk bytes of vm 102") }], config: { net0: "virtio=BC:24:11:00:00:02,bridge=vmbr0" } });
    for (const id of ["101", "102"]) await node.runner.run("vzdump", [id, "--storage", "local", "--compress", "zstd", "--mode", "stop"]);
    const files = readdirSync(node.dumpDir);
    ctArchive = join(node.dumpDir, files.find((f) => /^vzdump-lxc-101-.*\.tar\.zst$/.test(f))!);
    vmArchive = join(node.dumpDir, files.find((f) => /^vzdump-qemu-102-.*\.vma\.zst$/.test(f))!);
  });
  after(() => node?.close());

  const point = (location: string) => ({ id: "b-x", locationKind: "vzdump-archive" as const, location });
  const lvNames = () => node.pve.lvs().map((lv: { name: string }) => lv.name);

  it("restores a container to the next free vmid with --unique 1: files back, a new MAC, unlocked, progress reported", async () => {
    const progress: GuestRestoreProgress[] = [];
    const r = await restoreGuest(deps(), { point: point(ctArchive), force: false, start: false, signal: new AbortController().signal, onProgress: (p) => progress.push(p) });
    assert.equal(r.vmid, 100, "the first free id");
    assert.equal(r.vmType, "lxc");
    const g = node.pve.guest(100)!;
    assert.equal(g.lock, undefined);
    assert.equal(g.keys.hostname, "web");
    assert.match(g.keys.net0!, /hwaddr=[0-9A-F:]{17}/);
    assert.doesNotMatch(g.keys.net0!, /BC:24:11:00:00:01/, "--unique gives a new MAC");
    assert.equal(g.runtime!.status, "stopped");
    assert.equal(readFileSync(node.pve.state.path("lvm-data", "pve", "vm-100-disk-0", "srv", "orders.txt"), "utf8"), "42 orders\n");
    const call = node.pve.calls("pct").find((c: { args: string[] }) => c.args[0] === "restore")!;
    assert.deepEqual(call.args.slice(3, 7), ["--unique", "1", "--start", "0"]);
    assert.deepEqual([...new Set(progress.map((p) => p.stage))], ["config", "allocating", "extracting", "merging", "done"]);
  });

  it("never restores over an existing guest without force; with force it overwrites the stopped one", async () => {
    await assert.rejects(restoreGuest(deps(), { point: point(ctArchive), vmid: 101, force: false, start: false, signal: new AbortController().signal }), (err: Error & { code?: string }) => {
      assert.equal(err.code, "LULL_E_GUEST_EXISTS");
      assert.match(err.message, /guest 101 already exists: restore to another vmid.*give force/);
      return true;
    });
    assert.equal(node.pve.calls("pct").filter((c: { args: string[] }) => c.args[0] === "restore" && c.args[1] === "101").length, 0, "the tool never ran");
    const r = await restoreGuest(deps(), { point: point(ctArchive), vmid: 101, force: true, start: true, signal: new AbortController().signal });
    assert.equal(r.vmid, 101);
    assert.equal(node.pve.guest(101)!.runtime!.status, "running");
  });

  it("restores a VM archive with qmrestore: a new MAC, its disk, progress percentages", async () => {
    const progress: GuestRestoreProgress[] = [];
    const r = await restoreGuest(deps(), { point: point(vmArchive), vmid: 300, force: false, start: false, signal: new AbortController().signal, onProgress: (p) => progress.push(p) });
    assert.equal(r.vmType, "qemu");
    const g = node.pve.guest(300)!;
    assert.equal(g.keys.scsi0!.split(",")[0], "local-lvm:vm-300-disk-0");
    assert.doesNotMatch(g.keys.net0!, /BC:24:11:00:00:02/);
    assert.equal(readFileSync(node.pve.state.path("lvm-data", "pve", "vm-300-disk-0", "disk.img"), "utf8"), "disk bytes of vm 102");
    assert.ok(progress.some((p) => p.percent === 100));
  });

  it("a cancel or a timeout during the extraction leaves no guest and no volume", async () => {
    node.pve.setFaults({ slowRestore: { delayMs: 20_000 } });
    try {
      const controller = new AbortController();
      const cancelled = restoreGuest(deps(), {
        point: point(ctArchive), vmid: 400, force: false, start: false, signal: controller.signal,
        onProgress: (p) => p.line.startsWith("extracting archive") && controller.abort(Object.assign(new Error("restore cancelled by the operator"), { code: "LULL_E_CANCELLED" })),
      });
      await assert.rejects(cancelled, /restore cancelled by the operator/);
      assert.equal(node.pve.guest(400), undefined, "no half-created guest");
      assert.ok(!lvNames().includes("vm-400-disk-0"), "no volume left");

      const started = Date.now();
      await assert.rejects(restoreGuest(deps(), { point: point(ctArchive), vmid: 401, force: false, start: false, timeoutMs: 1_000, signal: new AbortController().signal }), (err: Error & { code?: string }) => {
        assert.equal(err.code, "LULL_E_GUEST_RESTORE_FAILED");
        assert.match(err.message, /took longer than 1000 ms; the half-restored guest was destroyed/);
        return true;
      });
      assert.ok(Date.now() - started < 15_000);
      assert.equal(node.pve.guest(401), undefined);
      assert.ok(!lvNames().includes("vm-401-disk-0"));
    } finally {
      node.pve.setFaults({});
    }
  });

  it("a config a killed restore left under `lock: create` is unlocked and destroyed with its volume", async () => {
    // As create_disks leaves it: the volume exists, the config does not name it yet.
    node.pve.addVolume("local-lvm", "vm-500-disk-0", {});
    node.pve.writeGuestConf("lxc", 500, { lock: "create" });
    assert.equal(await destroyCreatedGuest({ runner: node.runner }, "lxc", 500), true);
    assert.equal(node.pve.guest(500), undefined);
    assert.ok(!lvNames().includes("vm-500-disk-0"));
    const pct = node.pve.calls("pct").map((c: { args: string[] }) => c.args.slice(0, 2).join(" "));
    assert.ok(pct.includes("unlock 500") && pct.includes("destroy 500"));
    assert.equal(await destroyCreatedGuest({ runner: node.runner }, "lxc", 500), false, "already gone is fine");
  });

  it("refuses what is not a vzdump archive, a PBS snapshot without its storage, a bad vmid, a missing archive", async () => {
    const signal = new AbortController().signal;
    await assert.rejects(restoreGuest(deps(), { point: { id: "b-n", locationKind: "native-archive", location: "/a/b.tar.zst" }, force: false, start: false, signal }), /is a native archive: restore it to a directory/);
    await assert.rejects(restoreGuest(deps(), { point: { id: "b-p", locationKind: "pbs-snapshot", location: "ct/101/2026-12-02T10:00:00Z" }, force: false, start: false, signal }), /name the pbs: storage it is on/);
    await assert.rejects(restoreGuest(deps(), { point: point("/x/backup.tar"), force: false, start: false, signal }), /is not a vzdump archive/);
    await assert.rejects(restoreGuest(deps(), { point: point(ctArchive), vmid: 7, force: false, start: false, signal }), /vmid 7 is not a Proxmox vmid/);
    await assert.rejects(restoreGuest(deps(), { point: point(join(node.dumpDir, "vzdump-lxc-101-2020_01_01-00_00_00.tar.zst")), vmid: 600, force: false, start: false, signal }), (err: Error & { code?: string }) => {
      assert.equal(err.code, "LULL_E_GUEST_RESTORE_FAILED");
      assert.match(err.message, /can't find file/);
      return true;
    });
    assert.equal(existsSync(node.pve.state.path("etc", "pve", "nodes", "pve1", "lxc", "600.conf")), false);
  });
});
