// The fake vzdump's job level: the global lock (lockwait 0, waiting, timeout), the UPID pid
// file, parameter errors, guests not on this node, SIGTERM (`interrupted by signal`, cleanup
// runs) and SIGKILL (it leaves what the real one leaves: lock, .dat, snapshot, frozen CT).
import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { afterEach, beforeEach, describe, it } from "node:test";
import { createFakeNode, runTool, startTool, type FakeNode } from "./fake-node.js";
import { waitFor } from "../support/temp.js";

let node: FakeNode;

function seedCt(vmid = 101): void {
  node.pve.addContainer(vmid, {
    hostname: "web01",
    rootfs: { storage: "local-lvm", files: { "data/big.bin": Buffer.alloc(256 * 1024, 1) } },
  });
}

beforeEach(async () => {
  node = await createFakeNode();
});
afterEach(async () => {
  await node.cleanup();
});

describe("fake vzdump global lock", () => {
  it("--lockwait 0 fails at once while another vzdump holds the lock; a waiter gets it or times out", async () => {
    seedCt(101);
    seedCt(102);
    // 16 chunks × 500 ms: the first run holds the lock for 8 s, long enough on a loaded machine for
    // the three runs below to find it held (the last one waits for it).
    node.pve.setFaults({ slowArchive: { chunkBytes: 16 * 1024, delayMs: 500 } });
    const first = startTool(node.pve, "vzdump", ["101", "--storage", "local"]);
    await first.waitForLine(/starting new backup job/);
    const pidFile = node.pve.state.readText("run/vzdump.pid")!;
    assert.match(pidFile.trim(), new RegExp(`^UPID:pve1:[0-9A-F]{8}:[0-9A-F]{8}:[0-9A-F]{8}:vzdump:101:root@pam:$`));
    // fork_worker: the pid file holds the worker's UPID, not the CLI process's.
    const worker = node.pve.vzdumpWorkerOf(first.child.pid!);
    assert.ok(worker !== undefined && worker !== first.child.pid, "a forked worker runs the job");
    assert.equal(parseInt(pidFile.split(":")[2]!, 16), worker);

    const now = await runTool(node.pve, "vzdump", ["102", "--storage", "local", "--lockwait", "0"]);
    assert.equal(now.exitCode, 255);
    assert.deepEqual(now.lines, ["ERROR: can't acquire lock '/var/run/vzdump.lock' (wait = 0)"]);
    assert.equal(now.stderr.trim(), "can't acquire lock '/var/run/vzdump.lock' (wait = 0)");

    // one "minute" is 1 s here (options.lockwaitMinuteMs); the first run takes longer than that
    const timedOut = await runTool(node.pve, "vzdump", ["102", "--storage", "local", "--lockwait", "1"]);
    assert.equal(timedOut.exitCode, 255);
    assert.deepEqual(timedOut.lines, ["INFO: trying to get global lock - waiting...", "ERROR: can't acquire lock '/var/run/vzdump.lock' - got timeout"]);

    const waiter = await runTool(node.pve, "vzdump", ["102", "--storage", "local", "--lockwait", "30"]);
    assert.equal(waiter.exitCode, 0, waiter.stdout);
    assert.deepEqual(waiter.lines.slice(0, 3).map((l) => l.replace(/job: .*/, "job: …")), [
      "INFO: trying to get global lock - waiting...",
      "INFO: got global lock",
      "INFO: starting new backup job: …",
    ]);
    const firstResult = await first.result;
    assert.equal(firstResult.exitCode, 0);
    assert.ok(!existsSync(node.pve.state.path("run", "vzdump.pid")), "pid file removed at the end");
  });
});

describe("fake vzdump parameters", () => {
  it("rejects unknown options and conflicting ones like the real CLI", async () => {
    seedCt();
    const unknown = await runTool(node.pve, "vzdump", ["101", "--frobnicate", "1"]);
    assert.equal(unknown.exitCode, 255);
    assert.match(unknown.stderr, /^Unknown option: frobnicate\n400 unable to parse option\n/);
    const conflict = await runTool(node.pve, "vzdump", ["101", "--storage", "local", "--dumpdir", node.dir]);
    assert.equal(conflict.exitCode, 255);
    assert.match(conflict.stderr, /^400 Parameter verification failed\.\nstorage: option conflicts with option 'dumpdir'\n/);
    const mode = await runTool(node.pve, "vzdump", ["101", "--mode", "live"]);
    assert.match(mode.stderr, /mode: value 'live' does not have a value in the enumeration 'snapshot, suspend, stop'/);
  });

  it("a vmid no node has fails visibly (get_included_guests keeps it): `unable to find VM`, exit 255, pid file left", async () => {
    // Was: exit 0 silently. Real vzdump only skips guests of other cluster nodes; an unknown vmid is
    // kept ("include IDs for deleted guests, and visibly fail later") and exec_backup_task dies.
    const r = await runTool(node.pve, "vzdump", ["999", "--storage", "local"]);
    assert.equal(r.exitCode, 255, r.stdout);
    assert.ok(r.lines.includes("ERROR: Backup of VM 999 failed - unable to find VM '999'"), r.stdout);
    assert.match(r.stderr, /job errors/);
    assert.ok(existsSync(node.pve.state.path("run", "vzdump.pid")), "a failed job leaves its pid file (exec_backup unlinks it last)");
  });

  it("--exclude implies --all (verify_vzdump_parameters)", async () => {
    seedCt(101);
    seedCt(102);
    const r = await runTool(node.pve, "vzdump", ["--exclude", "101", "--storage", "local"]);
    assert.equal(r.exitCode, 0, r.stdout + r.stderr);
    assert.ok(r.lines.some((l) => l === "INFO: Starting Backup of VM 102 (lxc)"), r.stdout);
    assert.ok(!r.lines.some((l) => l.startsWith("INFO: Starting Backup of VM 101")), r.stdout);
  });

  it("writes to --dumpdir without a STOREID", async () => {
    seedCt();
    const r = await runTool(node.pve, "vzdump", ["101", "--dumpdir", node.dir]);
    assert.equal(r.exitCode, 0, r.stdout);
    assert.ok(readdirSync(node.dir).some((f) => /^vzdump-lxc-101-.*\.tar$/.test(f)));
  });
});

describe("fake vzdump interrupted", () => {
  it("SIGTERM: `interrupted by signal`, cleanup runs (unlock, snapshot removed, no .dat), exit 255", async () => {
    seedCt();
    node.pve.setFaults({ slowArchive: { chunkBytes: 8 * 1024, delayMs: 100 } });
    const run = startTool(node.pve, "vzdump", ["101", "--storage", "local", "--compress", "zstd"]);
    await run.waitForLine(/creating vzdump archive/);
    await waitFor("the partial .tar.dat", () => readdirSync(node.dumpDir).some((f) => f.endsWith(".tar.dat")), 10_000);
    run.child.kill("SIGTERM");
    const r = await run.result;
    assert.equal(r.exitCode, 255, r.stdout);
    assert.ok(r.lines.includes("ERROR: Backup of VM 101 failed - interrupted by signal"), r.stdout);
    assert.ok(r.lines.includes("INFO: cleanup temporary 'vzdump' snapshot"), r.stdout);
    const g = node.pve.guest(101)!;
    assert.equal(g.lock, undefined);
    assert.deepEqual(g.snapshots, []);
    assert.ok(!node.pve.lvs().some((lv) => lv.name === "snap_vm-101-disk-0_vzdump"));
  });

  it("SIGKILL mid-archive leaves lock: backup, the .dat, the vzdump snapshot and the pid file; the next run fails on the lock", async () => {
    seedCt();
    node.pve.setFaults({ slowArchive: { chunkBytes: 8 * 1024, delayMs: 100 } });
    const run = startTool(node.pve, "vzdump", ["101", "--storage", "local", "--compress", "zstd"]);
    await run.waitForLine(/creating vzdump archive/);
    await waitFor("the partial .tar.dat", () => readdirSync(node.dumpDir).some((f) => f.endsWith(".tar.dat")), 10_000);
    node.pve.killVzdump(run.child.pid!, "SIGKILL"); // CLI and worker, as a crash kills both
    await run.result;
    const g = node.pve.guest(101)!;
    assert.equal(g.lock, "backup");
    assert.equal(g.parent, "vzdump");
    assert.deepEqual(g.snapshots, ["vzdump"]);
    assert.ok(node.pve.lvs().some((lv) => lv.name === "snap_vm-101-disk-0_vzdump"));
    assert.ok(readdirSync(node.dumpDir).some((f) => f.endsWith(".tar.dat")));
    assert.ok(readFileSync(node.pve.state.path("run", "vzdump.pid"), "utf8").startsWith("UPID:pve1:"));

    node.pve.setFaults({});
    const again = await runTool(node.pve, "vzdump", ["101", "--storage", "local", "--lockwait", "0"]);
    assert.equal(again.exitCode, 255, "the dead holder's flock is free, the guest lock is not");
    assert.ok(again.lines.includes("ERROR: Backup of VM 101 failed - CT is locked (backup)"), again.stdout);
  });

  it("SIGKILL while the CT is frozen for its snapshot leaves it frozen (lxc-info shows FROZEN)", async () => {
    seedCt();
    node.pve.setFaults({ pauseWhileFrozenMs: 5000 });
    const run = startTool(node.pve, "vzdump", ["101", "--storage", "local"]);
    await run.waitForLine(/create storage snapshot 'vzdump'/);
    await waitFor("the CT frozen", () => node.pve.guest(101)!.runtime?.frozen === true, 10_000);
    node.pve.killVzdump(run.child.pid!, "SIGKILL");
    await run.result;
    const info = await runTool(node.pve, "lxc-info", ["-n", "101", "-s"]);
    assert.deepEqual(info.lines, ["State:          FROZEN"]);
    assert.equal(node.pve.guest(101)!.lock, "snapshot");
    const thaw = await runTool(node.pve, "lxc-unfreeze", ["-n", "101"]);
    assert.equal(thaw.exitCode, 0);
    assert.deepEqual((await runTool(node.pve, "lxc-info", ["-n", "101", "-s"])).lines, ["State:          RUNNING"]);
  });
});
