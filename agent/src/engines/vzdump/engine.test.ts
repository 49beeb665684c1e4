// The vzdump engine around the run: the thin-pool guard and a locked guest refuse before vzdump
// starts, runs are serialised per node, cancelling stops vzdump (whose own cleanup then runs),
// and a backup Proxmox starts by itself reaches the hook server's callback.
import assert from "node:assert/strict";
import { afterEach, beforeEach, describe, it } from "node:test";
import { execa } from "execa";
import { LullError, silentLogger, systemClock } from "@lull/shared";
import type { GuestConfig } from "../../config.js";
import type { HookMessage } from "../../hook/hook-protocol.js";
import { followForeignBackup } from "./foreign-backup.js";
import { recordingHooks, startFakePveNode, type FakePveNode, type RecordingHooks } from "../../pve/testing/fake-pve.js";
import type { VzdumpRun } from "./run.js";
import { createVzdumpEngine, type VzdumpEngine } from "./engine.js";
import { waitUntil } from "../../testing/wait.js";

let node: FakePveNode;
let foreign: HookMessage[] = [];
let foreignRun: VzdumpRun | undefined;
let foreignHooks: RecordingHooks;

function engine(): VzdumpEngine {
  const pve = { ...node.config, vzdump: { ...node.config.vzdump, compress: "0" as const } };
  return createVzdumpEngine({ pve, node: "pve1", runner: node.runner, launcher: node.launcher, hookServer: node.hookServer, hookScriptPath: node.hookScriptPath, clock: systemClock, log: silentLogger(), vzdumpEnv: node.env });
}

function guest(id: string): GuestConfig {
  return { id, engine: "vzdump" } as unknown as GuestConfig;
}

function seedCt(vmid: number, lock?: string): void {
  node.pve.addContainer(vmid, { rootfs: { storage: "local-lvm", files: { "data/blob": Buffer.alloc(128 * 1024, 5) } }, ...(lock ? { lock } : {}) });
}

beforeEach(async () => {
  foreign = [];
  foreignRun = undefined;
  foreignHooks = recordingHooks();
  node = await startFakePveNode({
    onForeignBackup: (m) => {
      foreign.push(m);
      foreignRun = followForeignBackup(m, foreignHooks, { runner: node.runner, pve: node.config, log: silentLogger(), clock: systemClock });
      return foreignRun;
    },
  });
});
afterEach(async () => {
  await node.close();
});

describe("vzdump engine around the run", () => {
  it("refuses above the thin-pool limits, naming the pool and the figures, before vzdump runs", async () => {
    seedCt(101);
    node.pve.setThinPoolUsage("pve", "data", { dataPercent: 85.2 });
    const hooks = recordingHooks();
    await assert.rejects(engine().run({ jobId: "j-00000000000000000000000000", guest: guest("101"), hooks, signal: new AbortController().signal, log: silentLogger() }), (e: unknown) => {
      assert.ok(e instanceof LullError && e.code === "LULL_E_SNAPSHOT_FAILED");
      assert.equal(e.message, "thin pool pve/data is too full to snapshot safely: data 85.20% (limit 80%), metadata 3.25% (limit 70%)");
      return true;
    });
    assert.deepEqual(hooks.phases(), []);
    assert.deepEqual(node.pve.calls("vzdump"), []);
  });

  it("the thin-pool guard applies only where vzdump takes an LVM snapshot: not to a VM, nor to stop or suspend mode, nor to a stopped container", async () => {
    node.pve.setThinPoolUsage("pve", "data", { dataPercent: 85.2 });
    node.pve.addVm(100, { disks: [{ key: "scsi0", storage: "local-lvm", bytes: Buffer.alloc(64 * 1024, 3) }] });
    seedCt(101);
    node.pve.addContainer(102, { status: "stopped", rootfs: { storage: "local-lvm", files: { "data/blob": "x" } } });
    const withMode = (mode: "snapshot" | "suspend" | "stop") => {
      const pve = { ...node.config, vzdump: { ...node.config.vzdump, compress: "0" as const, mode } };
      return createVzdumpEngine({ pve, node: "pve1", runner: node.runner, launcher: node.launcher, hookServer: node.hookServer, hookScriptPath: node.hookScriptPath, clock: systemClock, log: silentLogger(), vzdumpEnv: node.env });
    };
    const cases: Array<[string, "snapshot" | "suspend" | "stop"]> = [["100", "snapshot"], ["101", "stop"], ["101", "suspend"], ["102", "snapshot"]];
    for (const [i, [id, mode]] of cases.entries()) {
      const hooks = recordingHooks();
      const result = await withMode(mode).run({ jobId: `j-0000000000000000000000000${i}`, guest: guest(id), hooks, signal: new AbortController().signal, log: silentLogger() });
      assert.ok(result.archiveBytes > 0, `${id} ${mode}`);
      assert.ok(!hooks.notes().some((n) => n.startsWith("thin pool ")), `${id} ${mode}: no guard, no thin-pool note`);
    }
    assert.deepEqual(node.pve.calls("vzdump").map((c) => c.args[0]), ["100", "101", "101", "102"]);
  });

  it("refuses a locked guest with LULL_E_GUEST_BUSY before vzdump runs", async () => {
    seedCt(101, "backup");
    await assert.rejects(
      engine().run({ jobId: "j-00000000000000000000000000", guest: guest("101"), hooks: recordingHooks(), signal: new AbortController().signal, log: silentLogger() }),
      (e: unknown) => e instanceof LullError && e.code === "LULL_E_GUEST_BUSY" && /guest 101 is locked \(backup\)/.test(e.message),
    );
    assert.deepEqual(node.pve.calls("vzdump"), []);
  });

  it("runs one vzdump at a time per node; a job cancelled while waiting never starts one", async () => {
    seedCt(101);
    seedCt(102);
    seedCt(103);
    node.pve.setFaults({ slowArchive: { chunkBytes: 16 * 1024, delayMs: 40 } });
    const e = engine();
    let firstDone = false;
    let overlapped = false;
    const first = e.run({ jobId: "j-00000000000000000000000001", guest: guest("101"), hooks: recordingHooks(), signal: new AbortController().signal, log: silentLogger() }).then((r) => {
      firstDone = true;
      return r;
    });
    const waiting = new AbortController();
    const cancelled = e.run({ jobId: "j-00000000000000000000000002", guest: guest("103"), hooks: recordingHooks(), signal: waiting.signal, log: silentLogger() });
    const secondHooks = recordingHooks({ onQuiesce: () => (overlapped = !firstDone) });
    const second = e.run({ jobId: "j-00000000000000000000000003", guest: guest("102"), hooks: secondHooks, signal: new AbortController().signal, log: silentLogger() });
    waiting.abort();
    await assert.rejects(cancelled, (err: unknown) => err instanceof LullError && err.code === "LULL_E_CANCELLED");
    await Promise.all([first, second]);
    assert.equal(overlapped, false, "the second vzdump started after the first ended");
    assert.ok(!secondHooks.notes().some((n) => n.includes("trying to get global lock")));
    assert.deepEqual(node.pve.calls("vzdump").map((c) => c.args[0]), ["101", "102"]);
  });

  it("cancel: vzdump gets SIGTERM, runs its own cleanup (unlock, snapshot removed) and the job is cancelled", async () => {
    seedCt(101);
    node.pve.setFaults({ slowArchive: { chunkBytes: 8 * 1024, delayMs: 100 } });
    const hooks = recordingHooks();
    const ac = new AbortController();
    const running = engine().run({ jobId: "j-00000000000000000000000004", guest: guest("101"), hooks, signal: ac.signal, log: silentLogger() });
    await waitUntil(() => hooks.phases().includes("archiving:snapshot"));
    ac.abort();
    await assert.rejects(running, (e: unknown) => e instanceof LullError && e.code === "LULL_E_CANCELLED");
    assert.ok(hooks.notes().includes("vzdump: ERROR: Backup of VM 101 failed - interrupted by signal"), hooks.notes().join("\n"));
    const g = node.pve.guest(101)!;
    assert.equal(g.lock, undefined);
    assert.deepEqual(g.snapshots, []);
  });

  it("a vzdump started without the agent (scheduler) reaches onForeignBackup, which can follow it to the end", async () => {
    seedCt(101);
    const r = await execa("vzdump", ["101", "--mode", "snapshot", "--storage", "local", "--quiet", "1", "--script", node.hookScriptPath], { env: node.env, reject: false });
    assert.equal(r.exitCode, 0, `${r.stdout}${r.stderr}`);
    assert.deepEqual(foreign.map((m) => [m.phase, m.vmid, m.mode, m.env.VMTYPE]), [["backup-start", 101, "snapshot", "lxc"]]);
    const result = await foreignRun!.hookOutcome();
    assert.deepEqual(foreignHooks.phases(), ["quiesce", "snapshotting:snapshot", "snapshotted:snapshot", "archiving:snapshot"]);
    assert.match(result.archivePath, /vzdump-lxc-101-.*\.tar$/);
  });

  it("a vzdump Proxmox started to a PBS storage ends done with the snapshot id from TARGET (no output lines to read)", async () => {
    seedCt(101);
    node.pve.addPbsStorage("pbs1");
    const r = await execa("vzdump", ["101", "--mode", "snapshot", "--storage", "pbs1", "--quiet", "1", "--script", node.hookScriptPath], { env: node.env, reject: false });
    assert.equal(r.exitCode, 0, `${r.stdout}${r.stderr}`);
    const result = await foreignRun!.hookOutcome();
    assert.match(result.archivePath, /^ct\/101\/\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/);
  });
});
