// Crash cleanup against the fake toolbox: what a SIGKILLed vzdump leaves (lock, vzdump snapshot,
// .dat, a frozen CT) is cleaned only once no vzdump runs; the agent's own snapshots go by prefix.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdirSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, beforeEach, describe, it } from "node:test";
import { createExecaLauncher, silentLogger, systemClock } from "@lull/shared";
import { agentConfigSchema } from "../config.js";
import { createLvmThinDriver } from "../storage/lvmthin.js";
import { createZfsDriver } from "../storage/zfs.js";
import { PveCleanup } from "./cleanup.js";
import { killVzdump, killVzdumpTree, startFakePveNode, type FakePveNode } from "./testing/fake-pve.js";
import { waitUntil } from "../testing/wait.js";

let node: FakePveNode;

function cleanup(): PveCleanup {
  return new PveCleanup({ pve: node.config, node: "pve1", runner: node.runner, log: silentLogger() });
}

beforeEach(async () => {
  node = await startFakePveNode();
  node.pve.addContainer(101, { rootfs: { storage: "local-lvm", files: { "data/blob": Buffer.alloc(256 * 1024, 1) } } });
});
afterEach(async () => {
  await node.close();
});

describe("PveCleanup", () => {
  it("after a vzdump killed mid-archive: unlocks, removes vzdump's snapshot and the .dat; the next backup works", async () => {
    node.pve.setFaults({ slowArchive: { chunkBytes: 8 * 1024, delayMs: 100 } });
    await killVzdump(node, ["101", "--storage", "local", "--compress", "zstd"], () => readdirSync(node.dumpDir).some((f) => f.endsWith(".tar.dat")));
    node.pve.setFaults({});
    assert.equal(node.pve.guest(101)!.lock, "backup");
    const done = await cleanup().sweep();
    assert.deepEqual(
      done.map((d) => d.replace(/\/.*\//, "…/")),
      ["unlocked CT 101 (lock: backup)", "removed vzdump snapshot of CT 101", done[2]!.replace(/\/.*\//, "…/"), done[3]!.replace(/\/.*\//, "…/")],
    );
    assert.match(done[2]!, /^removed partial archive .*\/vzdump-lxc-101-.*\.tar\.dat$/);
    // exec_backup_task makes <basename>.tmp in every mode and removes it after its clean-up: a SIGKILL leaves it.
    assert.match(done[3]!, /^removed partial archive .*\/vzdump-lxc-101-.*\.tmp$/);
    const g = node.pve.guest(101)!;
    assert.equal(g.lock, undefined);
    assert.deepEqual(g.snapshots, []);
    assert.equal(g.parent, undefined);
    assert.ok(!node.pve.lvs().some((lv) => lv.name.startsWith("snap_")));
    assert.deepEqual(readdirSync(node.dumpDir).filter((f) => f.endsWith(".dat")), []);
    assert.deepEqual(
      node.runner.argvs().filter((a) => ["pct", "lxc-info", "lxc-unfreeze"].includes(a[0]!)),
      [
        ["pct", "config", "101", "--snapshot", "vzdump"],
        ["pct", "unlock", "101"],
        ["pct", "delsnapshot", "101", "vzdump", "--force"],
        ["lxc-info", "-n", "101", "-s"],
      ],
    );
    const again = spawn(join(node.pve.binDir, "vzdump"), ["101", "--storage", "local", "--compress", "zstd"], { env: { ...process.env, ...node.env }, stdio: "ignore" });
    assert.equal(await new Promise((r) => again.on("close", r)), 0);
  });

  it("after a vzdump killed while the CT was frozen: thaws it and clears the snapshot lock", async () => {
    node.pve.setFaults({ pauseWhileFrozenMs: 10_000 });
    await killVzdump(node, ["101", "--storage", "local"], () => node.pve.guest(101)!.runtime?.frozen === true);
    assert.equal(node.pve.guest(101)!.lock, "snapshot");
    const done = await cleanup().sweep();
    assert.deepEqual(done.slice(0, 3), ["unlocked CT 101 (lock: snapshot)", "removed vzdump snapshot of CT 101", "thawed CT 101"]);
    assert.equal(done.length, 4);
    assert.match(done[3]!, /^removed partial archive .*\/vzdump-lxc-101-[\d_-]+\.tmp$/, "the tmpdir a snapshot-mode run leaves");
    assert.equal(node.pve.guest(101)!.runtime?.frozen, false);
    assert.equal(node.pve.guest(101)!.lock, undefined);
    assert.deepEqual(node.runner.argvs().filter((a) => a[0]!.startsWith("lxc-")), [["lxc-info", "-n", "101", "-s"], ["lxc-unfreeze", "-n", "101"]]);
  });

  it("a VM vzdump left locked, paused and with frozen filesystems: qm unlock, qm resume, fsfreeze-thaw", async () => {
    node.pve.addVm(100, { disks: [{ key: "scsi0", storage: "local-lvm" }], agent: true, lock: "backup" });
    node.pve.setGuest(100, { status: "paused", fsFrozen: true });
    node.pve.addVm(104, { disks: [{ key: "scsi0", storage: "local-lvm" }], agent: true });
    node.pve.setGuest(104, { status: "paused" });
    const done = await cleanup().sweep();
    assert.deepEqual(done, ["unlocked VM 100 (lock: backup)", "resumed VM 100", "thawed the filesystems of VM 100"]);
    assert.deepEqual(
      node.runner.argvs().filter((a) => a[0] === "qm"),
      [
        ["qm", "status", "100"],
        ["qm", "config", "100"],
        ["qm", "unlock", "100"],
        ["qm", "resume", "100"],
        ["qm", "guest", "cmd", "100", "fsfreeze-status"],
        ["qm", "guest", "cmd", "100", "fsfreeze-thaw"],
      ],
    );
    const vm = node.pve.guest(100)!;
    assert.deepEqual([vm.lock, vm.runtime?.status, vm.runtime?.fsFrozen], [undefined, "running", false]);
    assert.equal(node.pve.guest(104)!.runtime?.status, "paused", "a VM paused by someone else (no backup lock) stays paused");
  });

  it("leaves locks and partial archives alone while the vzdump of the pid file runs", async () => {
    node.pve.setFaults({ slowArchive: { chunkBytes: 4 * 1024, delayMs: 200 } });
    const child = spawn(join(node.pve.binDir, "vzdump"), ["101", "--storage", "local", "--compress", "zstd"], { env: { ...process.env, ...node.env }, stdio: "ignore" });
    try {
      await waitUntil(() => readdirSync(node.dumpDir).some((f) => f.endsWith(".tar.dat")));
      const c = cleanup();
      assert.equal((await c.vzdumpProcess()).running, true);
      assert.deepEqual(await c.sweep(), []);
      assert.equal(node.pve.guest(101)!.lock, "backup");
    } finally {
      const closed = new Promise((r) => child.on("close", r));
      await killVzdumpTree(node, child.pid!);
      await closed;
    }
    assert.equal((await cleanup().vzdumpProcess()).running, false, "a dead pid in the pid file is not a running vzdump");
  });

  it("never touches a lock that is not vzdump's, nor partial archives of guests on other nodes", async () => {
    node.pve.addContainer(102, { rootfs: { storage: "local-lvm" }, lock: "migrate" });
    writeFileSync(join(node.dumpDir, "vzdump-lxc-555-2026_01_01-00_00_00.tar.dat"), "other node");
    mkdirSync(join(node.dumpDir, "vzdump-lxc-101-2026_01_01-00_00_00.tmp"));
    const done = await cleanup().sweep();
    assert.deepEqual(done.map((d) => d.replace(node.dumpDir, "DUMP")), ["removed partial archive DUMP/vzdump-lxc-101-2026_01_01-00_00_00.tmp"]);
    assert.equal(node.pve.guest(102)!.lock, "migrate");
    assert.ok(readdirSync(node.dumpDir).includes("vzdump-lxc-555-2026_01_01-00_00_00.tar.dat"));
  });

  it("the agent's own LVM and ZFS snapshots go by prefix through the drivers' sweep (the native engine's start-up sweep), never vzdump's", async () => {
    node.pve.addContainer(103, { rootfs: { storage: "local-zfs", files: { a: "1" } } });
    const run = (tool: string, args: string[]) => node.runner.run(tool, args);
    await run("lvcreate", ["-n", "lull-vm-101-disk-0-j-00000000000000000000000000", "-pr", "-s", "pve/vm-101-disk-0"]);
    await run("lvcreate", ["-n", "snap_vm-101-disk-0_vzdump", "-pr", "-s", "pve/vm-101-disk-0"]);
    // Two calls: one `zfs snapshot` may name a dataset only once (lzc_snapshot's EXDEV, as the fake now answers).
    await run("zfs", ["snapshot", "rpool/data/subvol-103-disk-0@lull-j-00000000000000000000000000"]);
    await run("zfs", ["snapshot", "rpool/data/subvol-103-disk-0@vzdump"]);
    const deps = { config: agentConfigSchema.parse({ dataDir: node.dir, archiveDir: node.dir, stagingDir: node.dir }), runner: node.runner, log: silentLogger(), clock: systemClock };
    const lvm = await createLvmThinDriver(deps, { mountDir: node.config.mountDir, mountsFile: node.config.mountsFile }).sweep([]);
    const zfs = await createZfsDriver(deps).sweep([]);
    assert.ok(lvm.includes("lv:pve/lull-vm-101-disk-0-j-00000000000000000000000000"), lvm.join("\n"));
    assert.ok(zfs.includes("rpool/data/subvol-103-disk-0@lull-j-00000000000000000000000000"), zfs.join("\n"));
    assert.deepEqual(node.pve.lvs().filter((lv) => lv.origin).map((lv) => lv.name), ["snap_vm-101-disk-0_vzdump"]);
    assert.deepEqual(node.pve.zfsSnapshots(), ["rpool/data/subvol-103-disk-0@vzdump"]);
  });

  it("an uncompressed archive's partial is <basename>.dat (s/\\.[^\\.]+$/\\.dat/ on ….tar): removed after a kill", async () => {
    node.pve.setFaults({ slowArchive: { chunkBytes: 8 * 1024, delayMs: 100 } });
    const partial = () => readdirSync(node.dumpDir).filter((f) => /^vzdump-lxc-101-.*\.dat$/.test(f));
    await killVzdump(node, ["101", "--storage", "local", "--compress", "0"], () => partial().length > 0);
    node.pve.setFaults({});
    assert.match(partial()[0]!, /^vzdump-lxc-101-\d{4}_\d{2}_\d{2}-\d{2}_\d{2}_\d{2}\.dat$/, "not ….tar.dat");
    const done = await cleanup().sweep();
    assert.ok(done.some((d) => /^removed partial archive .*\/vzdump-lxc-101-[\d_-]+\.dat$/.test(d)), done.join("; "));
    assert.deepEqual(partial(), []);
  });

  it("on a node up for 600 days (9-digit UPID pstart) a running vzdump is seen running: its lock and .dat are left alone", async () => {
    node.pve.setOptions({ uptimeDays: 600 });
    node.pve.setFaults({ slowArchive: { chunkBytes: 8 * 1024, delayMs: 100 } });
    const run = spawn(join(node.pve.binDir, "vzdump"), ["101", "--storage", "local", "--compress", "zstd"], { env: { ...process.env, ...node.env }, stdio: "ignore" });
    const exited = new Promise((r) => run.on("close", r));
    try {
      await waitUntil(() => readdirSync(node.dumpDir).some((f) => f.endsWith(".tar.dat")));
      const upid = node.pve.state.readText("run/vzdump.pid")!.trim();
      assert.match(upid, /^UPID:pve1:[0-9A-F]{8}:[0-9A-F]{9}:/, "pstart has 9 hex digits");
      const sweeper = new PveCleanup({ pve: node.config, node: "pve1", runner: node.runner, log: silentLogger(), procDir: node.pve.state.path("proc") });
      assert.equal((await sweeper.vzdumpProcess()).running, true);
      assert.deepEqual(await sweeper.sweep(), []);
      assert.equal(node.pve.guest(101)!.lock, "backup");
      assert.ok(readdirSync(node.dumpDir).some((f) => f.endsWith(".tar.dat")));
    } finally {
      await killVzdumpTree(node, run.pid!);
      await exited;
    }
  });

  it("holds vzdump's global flock for the whole sweep: a vzdump started during it cannot take the lock", async () => {
    let started: Promise<number | null> | undefined;
    const runner: typeof node.runner = Object.assign(Object.create(node.runner) as typeof node.runner, {
      run: (file: string, args: readonly string[], options?: Parameters<typeof node.runner.run>[2]) => {
        if (started === undefined) {
          // pvescheduler starts a job while the sweep works: with --lockwait 0 it must fail on the lock.
          const job = spawn(join(node.pve.binDir, "vzdump"), ["101", "--storage", "local", "--lockwait", "0"], { env: { ...process.env, ...node.env }, stdio: "ignore" });
          started = new Promise((r) => job.on("close", r));
        }
        return node.runner.run(file, args, options);
      },
    });
    const sweeper = new PveCleanup({ pve: node.config, node: "pve1", runner, launcher: createExecaLauncher(), log: silentLogger() });
    await sweeper.sweep();
    assert.ok(started, "the sweep ran a command");
    assert.equal(await started, 255, "vzdump could not take its global lock while the sweep held it");
    assert.equal(node.pve.guest(101)!.lock, undefined, "it touched no guest");
    const again = spawn(join(node.pve.binDir, "vzdump"), ["101", "--storage", "local", "--lockwait", "0"], { env: { ...process.env, ...node.env }, stdio: "ignore" });
    assert.equal(await new Promise((r) => again.on("close", r)), 0, "after the sweep the lock is free");
  });
});
