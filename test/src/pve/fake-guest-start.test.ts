// The fake `pct start` / `qm start` and what a stop-mode vzdump killed mid-run leaves: a guest that
// is shut down (status stopped) under `lock: backup`, which start refuses exactly like the real
// tools until it is unlocked; vzdump's own restart (its cleanup) marks it running again.
import assert from "node:assert/strict";
import { readdirSync } from "node:fs";
import { afterEach, beforeEach, describe, it } from "node:test";
import { createFakeNode, runTool, startTool, type FakeNode } from "./fake-node.js";
import { waitFor } from "../support/temp.js";

let node: FakeNode;

beforeEach(async () => {
  node = await createFakeNode();
  node.pve.addContainer(101, { hostname: "web01", rootfs: { storage: "local-lvm", files: { "data/big.bin": Buffer.alloc(256 * 1024, 1) } } });
  node.pve.addVm(100, { name: "db", disks: [{ key: "scsi0", storage: "local-lvm" }] });
});
afterEach(async () => {
  await node.cleanup();
});

describe("fake pct / qm start", () => {
  it("pct start: silent, marks the CT running; refuses a running CT first, then a locked one (unless --skiplock)", async () => {
    const running = await runTool(node.pve, "pct", ["start", "101"]);
    assert.deepEqual([running.exitCode, running.stdout, running.stderr], [255, "", "CT 101 already running\n"]);

    node.pve.setGuest(101, { status: "stopped" });
    node.pve.setLock(101, "backup");
    const locked = await runTool(node.pve, "pct", ["start", "101"]);
    assert.deepEqual([locked.exitCode, locked.stdout, locked.stderr], [255, "", "CT is locked (backup)\n"]);
    assert.equal((await runTool(node.pve, "pct", ["status", "101"])).stdout, "status: stopped\n");

    assert.equal((await runTool(node.pve, "pct", ["unlock", "101"])).exitCode, 0);
    const started = await runTool(node.pve, "pct", ["start", "101"]);
    assert.deepEqual([started.exitCode, started.stdout, started.stderr], [0, "", ""]);
    assert.equal((await runTool(node.pve, "pct", ["status", "101"])).stdout, "status: running\n");

    node.pve.setGuest(101, { status: "stopped" });
    node.pve.setLock(101, "backup");
    assert.equal((await runTool(node.pve, "pct", ["start", "101", "--skiplock"])).exitCode, 0);
    assert.equal(node.pve.guest(101)!.runtime?.status, "running");
    node.pve.setGuest(101, { status: "stopped" });
    node.pve.setLock(101, undefined);
    node.pve.setFaults({ guestStartFail: "startup for container '101' failed" });
    const failing = await runTool(node.pve, "pct", ["start", "101"]);
    assert.deepEqual([failing.exitCode, failing.stderr], [255, "startup for container '101' failed\n"]);
    assert.equal(node.pve.guest(101)!.runtime?.status, "stopped");
    node.pve.setFaults({});
    const unknown = await runTool(node.pve, "pct", ["start", "999"]);
    assert.deepEqual([unknown.exitCode, unknown.stderr], [255, "Configuration file 'nodes/pve1/lxc/999.conf' does not exist\n"]);
  });

  it("qm start: checks the lock before the running state; a paused VM counts as running", async () => {
    node.pve.setLock(100, "backup");
    const locked = await runTool(node.pve, "qm", ["start", "100"]);
    assert.deepEqual([locked.exitCode, locked.stderr], [255, "VM is locked (backup)\n"]);
    assert.equal((await runTool(node.pve, "qm", ["unlock", "100"])).exitCode, 0);
    node.pve.setGuest(100, { status: "paused" });
    const paused = await runTool(node.pve, "qm", ["start", "100"]);
    assert.deepEqual([paused.exitCode, paused.stderr], [255, "VM 100 already running\n"]);
    node.pve.setGuest(100, { status: "stopped" });
    const started = await runTool(node.pve, "qm", ["start", "100"]);
    assert.deepEqual([started.exitCode, started.stdout, started.stderr], [0, "", ""]);
    assert.equal((await runTool(node.pve, "qm", ["status", "100"])).stdout, "status: running\n");
  });
});

describe("fake vzdump in stop mode, killed", () => {
  it("SIGKILL while archiving leaves the CT shut down under lock: backup; unlock + pct start brings it back", async () => {
    node.pve.setFaults({ slowArchive: { chunkBytes: 8 * 1024, delayMs: 100 } });
    const run = startTool(node.pve, "vzdump", ["101", "--mode", "stop", "--storage", "local", "--compress", "zstd"]);
    await run.waitForLine(/creating vzdump archive/);
    await waitFor("the partial .tar.dat", () => readdirSync(node.dumpDir).some((f) => f.endsWith(".tar.dat")), 10_000);
    assert.equal(node.pve.guest(101)!.runtime?.status, "stopped", "vzdump shut the CT down at pre-stop");
    node.pve.killVzdump(run.child.pid!, "SIGKILL"); // CLI and worker, as a crash kills both
    const r = await run.result;
    assert.equal(r.signal, "SIGKILL");
    assert.ok(!r.lines.includes("INFO: restarting vm"), r.stdout);
    const g = node.pve.guest(101)!;
    assert.deepEqual([g.lock, g.runtime?.status], ["backup", "stopped"]);
    assert.equal((await runTool(node.pve, "pct", ["start", "101"])).stderr, "CT is locked (backup)\n");
    assert.equal((await runTool(node.pve, "pct", ["unlock", "101"])).exitCode, 0);
    assert.equal((await runTool(node.pve, "pct", ["start", "101"])).exitCode, 0);
    assert.equal(node.pve.guest(101)!.runtime?.status, "running");
  });
});
