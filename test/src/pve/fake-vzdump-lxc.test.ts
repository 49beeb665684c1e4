// The fake vzdump on containers: hook order per mode, the hook's wiped environment, the log
// lines, the archive (.dat renamed, real tar content), the vzdump snapshot's lifetime, and the
// failures (locked CT, failing hook, thin pool full, snapshot preparation → suspend fallback).
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readdirSync } from "node:fs";

import { afterEach, beforeEach, describe, it } from "node:test";
import { assertInOrder, createFakeNode, runTool, writeRecordingHook, type FakeNode } from "./fake-node.js";

let node: FakeNode;

function seedCt(vmid = 101, status: "running" | "stopped" = "running"): void {
  node.pve.addContainer(vmid, {
    hostname: "web01",
    status,
    rootfs: { storage: "local-lvm", files: { "etc/hostname": "web01\n", "var/lib/app/state": "v1" } },
    mps: [
      { storage: "local-zfs", mp: "/srv/data", backup: true, files: { "db/rows.txt": "row1\nrow2\n" } },
      { storage: "local-zfs", mp: "/srv/cache", backup: false, files: { "junk.bin": "x" } },
      { bind: "/mnt/host", mp: "/host" },
    ],
  });
}

function indexOfLine(lines: string[], text: string): number {
  const i = lines.findIndex((l) => l === text || l.startsWith(text));
  assert.ok(i >= 0, `missing line ${JSON.stringify(text)} in:\n${lines.join("\n")}`);
  return i;
}

beforeEach(async () => {
  node = await createFakeNode();
});
afterEach(async () => {
  await node.cleanup();
});

describe("fake vzdump, container in snapshot mode", () => {
  it("calls the hook in the real order with the wiped environment and writes a real archive", async () => {
    seedCt();
    const hook = await writeRecordingHook(node.dir, { print: "HOOK:" });
    const r = await runTool(node.pve, "vzdump", ["101", "--mode", "snapshot", "--script", hook.path, "--storage", "local", "--compress", "zstd"]);
    assert.equal(r.exitCode, 0, r.stdout + r.stderr);
    assert.deepEqual(await hook.phases(), [
      "job-init",
      "job-start",
      "backup-start snapshot 101",
      "pre-stop snapshot 101",
      "pre-restart snapshot 101",
      "post-restart snapshot 101",
      "backup-end snapshot 101",
      "log-end snapshot 101",
      "job-end",
    ]);
    const calls = await hook.calls();
    const guestEnv = calls.find((c) => c.args[0] === "pre-stop")!.env;
    assert.deepEqual(Object.keys(guestEnv).sort(), ["DUMPDIR", "HOSTNAME", "LC_ALL", "LOGFILE", "LVM_SUPPRESS_FD_WARNINGS", "STOREID", "TARGET", "VMTYPE"]);
    assert.equal(guestEnv.PATH, undefined);
    assert.equal(guestEnv.VMTYPE, "lxc");
    assert.equal(guestEnv.HOSTNAME, "web01");
    assert.equal(guestEnv.STOREID, "local");
    assert.equal(guestEnv.DUMPDIR, node.dumpDir);
    assert.match(guestEnv.TARGET!, /\/vzdump-lxc-101-\d{4}_\d\d_\d\d-\d\d_\d\d_\d\d\.tar\.zst$/);
    // job-init runs in PVE::VZDump::new before the storage's dump dir is resolved: STOREID, no DUMPDIR.
    assert.deepEqual(Object.keys(calls[0]!.env).sort(), ["LC_ALL", "LVM_SUPPRESS_FD_WARNINGS", "STOREID"]);

    assertInOrder(r.lines, [
      "INFO: HOOK: job-init",
      "INFO: starting new backup job: vzdump 101 --mode snapshot --script",
      "INFO: Starting Backup of VM 101 (lxc)",
      "INFO: Backup started at ",
      "INFO: status = running",
      "INFO: CT Name: web01",
      "INFO: including mount point rootfs ('/') in backup",
      "INFO: including mount point mp0 ('/srv/data') in backup",
      "INFO: excluding volume mount point mp1 ('/srv/cache') from backup (disabled)",
      "INFO: excluding bind mount point mp2 ('/host') from backup (not a volume)",
      "INFO: backup mode: snapshot",
      "INFO: ionice priority: 7",
      "INFO: HOOK: pre-stop snapshot 101",
      "INFO: suspend vm to make snapshot",
      "INFO: create storage snapshot 'vzdump'",
      '  Logical volume "snap_vm-101-disk-0_vzdump" created.',
      "INFO: HOOK: pre-restart snapshot 101",
      "INFO: resume vm",
      "INFO: guest is online again after ",
      "INFO: HOOK: post-restart snapshot 101",
      `INFO: creating vzdump archive '${guestEnv.TARGET}'`,
      "INFO: Total bytes written: ",
      "INFO: archive file size: ",
      "INFO: HOOK: backup-end snapshot 101",
      "INFO: cleanup temporary 'vzdump' snapshot",
      '  Logical volume "snap_vm-101-disk-0_vzdump" successfully removed.',
      "INFO: Finished Backup of VM 101 (00:00:0",
      "INFO: Backup finished at ",
      "INFO: HOOK: log-end snapshot 101",
      "INFO: HOOK: job-end",
      "INFO: Backup job finished successfully",
    ]);
    const files = readdirSync(node.dumpDir);
    assert.equal(files.filter((f) => f.endsWith(".dat")).length, 0, "no .dat left");
    const listing = execFileSync("tar", ["--zstd", "-tf", guestEnv.TARGET!], { encoding: "utf8" });
    for (const f of ["./etc/vzdump/pct.conf", "./etc/hostname", "./var/lib/app/state", "./srv/data/db/rows.txt"]) {
      assert.ok(listing.split("\n").includes(f), `${f} in archive:\n${listing}`);
    }
    assert.ok(!listing.includes("junk.bin"), "a backup=0 mount point is not archived");
    const after = node.pve.guest(101)!;
    assert.equal(after.lock, undefined);
    assert.equal(after.parent, undefined);
    assert.deepEqual(after.snapshots, []);
    assert.equal(after.runtime?.frozen, false);
    assert.deepEqual(node.pve.zfsSnapshots(), []);
    assert.ok(!node.pve.lvs().some((lv) => lv.name.startsWith("snap_")));
  });

  it("creates the vzdump snapshots only between `create storage snapshot` and the cleanup, with the real argv", async () => {
    seedCt();
    const hook = await writeRecordingHook(node.dir);
    const r = await runTool(node.pve, "vzdump", ["101", "--script", hook.path, "--storage", "local"]);
    assert.equal(r.exitCode, 0, r.stdout);
    const seq = node.pve.calls().filter((c) => c.tool !== "vzdump").map((c) => `${c.tool} ${c.args.join(" ")}`);
    assert.deepEqual(seq, [
      "hook job-init",
      "hook job-start",
      "hook backup-start snapshot 101",
      "hook pre-stop snapshot 101",
      "lvcreate -n snap_vm-101-disk-0_vzdump -pr -s pve/vm-101-disk-0",
      "lvchange -ay -K pve/snap_vm-101-disk-0_vzdump",
      "zfs snapshot rpool/data/subvol-101-disk-1@vzdump",
      "hook pre-restart snapshot 101",
      "hook post-restart snapshot 101",
      "hook backup-end snapshot 101",
      "lvremove -f pve/snap_vm-101-disk-0_vzdump",
      "zfs destroy rpool/data/subvol-101-disk-1@vzdump",
      "hook log-end snapshot 101",
      "hook job-end",
    ]);
  });

  it("falls back to suspend mode when snapshot preparation fails", async () => {
    seedCt();
    node.pve.setFaults({ snapshotPrepareFail: "some volumes do not support snapshots" });
    const hook = await writeRecordingHook(node.dir);
    const r = await runTool(node.pve, "vzdump", ["101", "--mode", "snapshot", "--script", hook.path, "--storage", "local"]);
    assert.equal(r.exitCode, 0, r.stdout);
    assertInOrder(r.lines, [
      "INFO: mode failure - some volumes do not support snapshots",
      "INFO: trying 'suspend' mode instead",
      "INFO: backup mode: suspend",
      "INFO: starting first sync /proc/",
      "INFO: suspending guest",
      "INFO: starting final sync /proc/",
      "INFO: resuming guest",
      "INFO: guest is online again after ",
      "INFO: creating vzdump archive ",
    ]);
    assert.ok(!r.stdout.includes("create storage snapshot"));
    assert.deepEqual((await hook.phases()).filter((p) => p.endsWith(" 101")), [
      "backup-start suspend 101",
      "pre-stop suspend 101",
      "pre-restart suspend 101",
      "post-restart suspend 101",
      "backup-end suspend 101",
      "log-end suspend 101",
    ]);
    assert.equal(node.pve.calls("lvcreate").length, 0);
    assert.deepEqual(readdirSync(node.dumpDir).filter((f) => f.endsWith(".tmp")), [], "the suspend copy is removed");
  });

  it("falls back to suspend on its own when a volume cannot be snapshotted (dir storage)", async () => {
    node.pve.addContainer(102, { rootfs: { storage: "local", files: { a: "1" } } });
    const r = await runTool(node.pve, "vzdump", ["102", "--storage", "local"]);
    assert.equal(r.exitCode, 0, r.stdout);
    indexOfLine(r.lines, "INFO: mode failure - some volumes do not support snapshots");
    indexOfLine(r.lines, "INFO: backup mode: suspend");
  });
});

describe("fake vzdump, container in stop mode and stopped", () => {
  it("stop mode: pre-stop, shutdown, archive, backup-end, then pre-restart and restart", async () => {
    seedCt();
    const hook = await writeRecordingHook(node.dir);
    const r = await runTool(node.pve, "vzdump", ["101", "--mode", "stop", "--script", hook.path, "--storage", "local"]);
    assert.equal(r.exitCode, 0, r.stdout);
    assert.deepEqual((await hook.phases()).filter((p) => p.endsWith(" 101")), [
      "backup-start stop 101",
      "pre-stop stop 101",
      "backup-end stop 101",
      "pre-restart stop 101",
      "post-restart stop 101",
      "log-end stop 101",
    ]);
    assertInOrder(r.lines, ["INFO: backup mode: stop", "INFO: stopping virtual guest", "INFO: creating vzdump archive", "INFO: restarting vm", "INFO: guest is online again after "]);
    assert.equal(node.pve.guest(101)!.runtime?.status, "running");
  });

  it("a stopped container always gets stop mode and only backup-start, backup-end, log-end", async () => {
    seedCt(101, "stopped");
    const hook = await writeRecordingHook(node.dir);
    const r = await runTool(node.pve, "vzdump", ["101", "--mode", "snapshot", "--script", hook.path, "--storage", "local"]);
    assert.equal(r.exitCode, 0, r.stdout);
    assert.deepEqual((await hook.phases()).filter((p) => p.endsWith(" 101")), ["backup-start stop 101", "backup-end stop 101", "log-end stop 101"]);
    assertInOrder(r.lines, ["INFO: status = stopped", "INFO: backup mode: stop", "INFO: CT Name: web01"]);
    assert.equal(node.pve.guest(101)!.runtime?.status, "stopped");
  });
});

describe("fake vzdump, container failures", () => {
  it("a stale lock fails that guest with `CT is locked (backup)` and exit 255", async () => {
    seedCt();
    node.pve.addContainer(102, { rootfs: { storage: "local-lvm" }, lock: "backup" });
    const hook = await writeRecordingHook(node.dir);
    const r = await runTool(node.pve, "vzdump", ["102", "101", "--script", hook.path, "--storage", "local"]);
    assert.equal(r.exitCode, 255);
    assertInOrder(r.lines, [
      "INFO: Starting Backup of VM 102 (lxc)",
      "INFO: status = running",
      "ERROR: Backup of VM 102 failed - CT is locked (backup)",
      "INFO: Failed at ",
      "INFO: Starting Backup of VM 101 (lxc)",
      "INFO: Finished Backup of VM 101",
      "INFO: Backup job finished with errors",
    ]);
    assert.equal(r.stderr.trim(), "job errors");
    assert.deepEqual((await hook.phases()).filter((p) => p.endsWith(" 102")), ["backup-abort snapshot 102", "log-end snapshot 102"]);
    assert.equal(node.pve.guest(102)!.lock, "backup", "a lock vzdump did not take stays");
  });

  it("a failing pre-stop hook fails the guest before any snapshot, unlocks it and runs backup-abort", async () => {
    seedCt();
    const hook = await writeRecordingHook(node.dir, { failPhase: "pre-stop", exitCode: 3 });
    const r = await runTool(node.pve, "vzdump", ["101", "--script", hook.path, "--storage", "local"]);
    assert.equal(r.exitCode, 255);
    indexOfLine(r.lines, `ERROR: Backup of VM 101 failed - command '${hook.path} pre-stop snapshot 101' failed: exit code 3`);
    assert.equal(node.pve.calls("lvcreate").length, 0);
    assert.deepEqual((await hook.phases()).filter((p) => p.endsWith(" 101")), ["backup-start snapshot 101", "pre-stop snapshot 101", "backup-abort snapshot 101", "log-end snapshot 101"]);
    assert.equal(node.pve.guest(101)!.lock, undefined);
  });

  it("a full thin pool fails the snapshot with lvcreate's message and leaves nothing behind", async () => {
    node.pve.addContainer(103, { rootfs: { storage: "local-lvm", files: { a: "1" } } });
    node.pve.setFaults({ thinPoolFull: "pve/data" });
    const r = await runTool(node.pve, "vzdump", ["103", "--storage", "local"]);
    assert.equal(r.exitCode, 255);
    assertInOrder(r.lines, [
      "INFO: create storage snapshot 'vzdump'",
      "snapshot create failed: starting cleanup",
      "ERROR: Backup of VM 103 failed - lvcreate snapshot 'pve/snap_vm-103-disk-0_vzdump' error:   Cannot create new thin volume, free space in thin pool pve/data reached threshold.",
    ]);
    const g = node.pve.guest(103)!;
    assert.equal(g.lock, undefined);
    assert.deepEqual(g.snapshots, []);
    assert.equal(g.runtime?.frozen, false);
    assert.deepEqual(readdirSync(node.dumpDir).filter((f) => f.includes("vzdump-lxc-103") && !f.endsWith(".log")), []);
    assert.ok(!node.pve.lvs().some((lv) => lv.name.startsWith("snap_")));
  });

  it("removes an old vzdump snapshot left by a crash once the guest is unlocked", async () => {
    seedCt();
    node.pve.state.writeText(
      `etc/pve/nodes/pve1/lxc/101.conf`,
      `${node.pve.state.readText("etc/pve/nodes/pve1/lxc/101.conf")}parent: vzdump\n\n[vzdump]\n#vzdump backup snapshot\nrootfs: local-lvm:vm-101-disk-0,size=8G\nsnapstate: prepare\n`,
    );
    const created = await runTool(node.pve, "lvcreate", ["-n", "snap_vm-101-disk-0_vzdump", "-pr", "-s", "pve/vm-101-disk-0"]);
    assert.equal(created.exitCode, 0, created.stderr);
    const r = await runTool(node.pve, "vzdump", ["101", "--storage", "local"]);
    assert.equal(r.exitCode, 0, r.stdout);
    assertInOrder(r.lines, ["INFO: found old vzdump snapshot (force removal)", "INFO: backup mode: snapshot", "INFO: create storage snapshot 'vzdump'"]);
    assert.deepEqual(node.pve.guest(101)!.snapshots, []);
  });
});

