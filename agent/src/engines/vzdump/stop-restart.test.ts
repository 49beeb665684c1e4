// The vzdump engine in stop mode with the shutdown store: the guest's shutdown is recorded at
// pre-stop before vzdump shuts it down, and closed at post-restart; a guest that was not running
// (no pre-stop) or a snapshot-mode run records nothing; when vzdump dies while the guest is shut
// down, the engine's own crash cleanup starts it again right away and notes it, and the run still
// fails with vzdump's error. A shutdown left open because a vzdump ran is settled by a later check.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { afterEach, beforeEach, describe, it } from "node:test";
import { Phase, QuiescePolicy } from "@lull/proto";
import { LullError, silentLogger, systemClock } from "@lull/shared";
import type { GuestConfig } from "../../config.js";
import { newJobRecord } from "../../jobs/job.js";
import { JobStore } from "../../jobs/store.js";
import type { ForeignBackupHandler } from "../../hook/hook-server.js";
import { PveCleanup } from "../../pve/cleanup.js";
import { followForeignBackup } from "./foreign-backup.js";
import { VzdumpShutdownStore, stopModeRecorder } from "./shutdown-store.js";
import { killVzdumpTree, recordingHooks, startFakePveNode, type FakePveNode, type RecordingHooks } from "../../pve/testing/fake-pve.js";
import { createVzdumpEngine } from "./engine.js";
import { waitUntil } from "../../testing/wait.js";

const JOB = "j-0000000000000000000000stop";
let node: FakePveNode;
let jobs: JobStore;
let shutdowns: VzdumpShutdownStore;
/** What the hook server does with a backup Proxmox started by itself (set by the test that needs it). */
let onForeign: ForeignBackupHandler | undefined;

function engine(mode: "snapshot" | "stop", stopGraceMs?: number) {
  const pve = { ...node.config, vzdump: { ...node.config.vzdump, mode, compress: "0" as const, ...(stopGraceMs !== undefined ? { stopGraceMs } : {}) } };
  const cleanup = new PveCleanup({ pve, node: "pve1", runner: node.runner, log: silentLogger(), clock: systemClock, shutdowns });
  return createVzdumpEngine({ pve, node: "pve1", runner: node.runner, launcher: node.launcher, hookServer: node.hookServer, hookScriptPath: node.hookScriptPath, clock: systemClock, log: silentLogger(), vzdumpEnv: node.env, cleanup, shutdowns });
}

function run(hooks: RecordingHooks, mode: "snapshot" | "stop" = "stop", signal: AbortSignal = new AbortController().signal, stopGraceMs?: number) {
  const record = newJobRecord({ id: JOB, guestId: "101", engine: "vzdump", policy: QuiescePolicy.QUIESCE_POLICY_FAIL, idempotencyKey: JOB, quiesceTimeoutMs: 1_000, requestedBy: "test", now: Date.now() });
  jobs.createJob({ ...record, phase: Phase.PHASE_QUIESCING }, [], Date.now());
  return engine(mode, stopGraceMs).run({ jobId: JOB, guest: { id: "101", engine: "vzdump" } as unknown as GuestConfig, hooks, signal, log: silentLogger() });
}

beforeEach(async () => {
  onForeign = undefined;
  node = await startFakePveNode({ onForeignBackup: (m) => onForeign?.(m) });
  jobs = JobStore.open(join(node.dir, "agent.db"));
  shutdowns = new VzdumpShutdownStore(jobs.connection);
});
afterEach(async () => {
  jobs.close();
  await node.close();
});

function seedCt(status: "running" | "stopped" = "running"): void {
  node.pve.addContainer(101, { status, rootfs: { storage: "local-lvm", files: { "data/blob": Buffer.alloc(256 * 1024, 7) } } });
}

describe("vzdump engine, stop mode: the guest's shutdown is recorded", () => {
  it("a running CT: recorded before the shutdown, closed at post-restart; nothing for the cleanup", async () => {
    seedCt();
    let recordedWhileRunning = false;
    const hooks = recordingHooks();
    const snapshotting = hooks.snapshotting.bind(hooks);
    hooks.snapshotting = (mode) => {
      // Entered right after the record, still inside pre-stop: vzdump has not shut the CT down yet.
      recordedWhileRunning = shutdowns.get(JOB) !== undefined && node.pve.guest(101)!.runtime?.status === "running";
      snapshotting(mode);
    };
    await run(hooks);
    assert.ok(recordedWhileRunning, "the shutdown was on disk while the CT still ran");
    const s = shutdowns.get(JOB)!;
    assert.deepEqual([s.vmid, s.vmtype, s.settledAt], [101, "lxc", undefined]);
    assert.ok(s.restartBegunAt !== undefined && s.restartedAt !== undefined && s.restartedAt >= s.restartBegunAt && s.restartBegunAt >= s.shutdownAt);
    assert.equal(node.pve.guest(101)!.runtime?.status, "running");
    assert.deepEqual(node.runner.argvs().filter((a) => a[1] === "start"), []);
  });

  it("a CT that was stopped before the backup (no pre-stop) and a snapshot-mode run record nothing", async () => {
    seedCt("stopped");
    await run(recordingHooks());
    assert.equal(shutdowns.get(JOB), undefined);
    assert.equal(node.pve.guest(101)!.runtime?.status, "stopped");
    jobs.connection.prepare("DELETE FROM jobs").run();
    node.pve.setGuest(101, { status: "running" });
    await run(recordingHooks(), "snapshot");
    assert.equal(shutdowns.get(JOB), undefined);
  });

  it("vzdump killed while the CT is shut down: the engine's cleanup unlocks and starts it, notes it, the run fails", async () => {
    seedCt();
    node.pve.setFaults({ slowArchive: { chunkBytes: 8 * 1024, delayMs: 100 } });
    const hooks = recordingHooks();
    const running = run(hooks);
    // compress "0": the partial is <basename>.dat (vzdump replaces the `.tar`), not ….tar.dat.
    await waitUntil(() => readdirSync(node.dumpDir).some((f) => /^vzdump-lxc-101-[\d_-]+\.dat$/.test(f)) && node.pve.guest(101)!.runtime?.status === "stopped");
    const failed = assert.rejects(running, (e: unknown) => e instanceof LullError && /vzdump/.test(e.message));
    await killVzdumpTree(node, node.pve.calls("vzdump").at(-1)!.pid); // CLI and worker, as a crash kills both
    await failed;
    const g = node.pve.guest(101)!;
    assert.deepEqual([g.lock, g.runtime?.status], [undefined, "running"]);
    assert.ok(node.runner.argvs().some((a) => a.join(" ") === "pct start 101"));
    assert.ok(
      hooks.notes().includes("guest 101: started again by the crash cleanup (pct start 101): vzdump shut it down (stop mode) and ended before starting it again"),
      hooks.notes().join("\n"),
    );
    assert.ok(shutdowns.get(JOB)!.settledAt !== undefined);
    assert.ok(!readdirSync(node.dumpDir).some((f) => f.endsWith(".dat")), "the same cleanup removed the partial archive");
  });

  it("an orphaned vzdump (the agent restarted while it ran) dies later: the recheck starts the CT, never while it runs", async () => {
    seedCt();
    const record = newJobRecord({ id: JOB, guestId: "101", engine: "vzdump", policy: QuiescePolicy.QUIESCE_POLICY_FAIL, idempotencyKey: JOB, quiesceTimeoutMs: 1_000, requestedBy: "test", now: Date.now() });
    jobs.createJob({ ...record, phase: Phase.PHASE_FAILED }, [], Date.now());
    node.pve.setFaults({ slowArchive: { chunkBytes: 8 * 1024, delayMs: 100 } });
    const orphan = spawn(join(node.pve.binDir, "vzdump"), ["101", "--mode", "stop", "--storage", "local", "--compress", "zstd"], { env: { ...process.env, ...node.env }, stdio: "ignore" });
    const exited = new Promise((r) => orphan.on("close", r));
    try {
      await waitUntil(() => readdirSync(node.dumpDir).some((f) => f.endsWith(".tar.dat")) && node.pve.guest(101)!.runtime?.status === "stopped");
      shutdowns.recordShutdown(JOB, 101, "lxc", Date.now());
      const e = engine("stop");
      assert.deepEqual(await e.settleOpenShutdowns(new AbortController().signal), [], "a vzdump runs: nothing touched");
      assert.equal(node.pve.guest(101)!.lock, "backup");
      await killVzdumpTree(node, orphan.pid!);
      await exited;
      node.pve.setFaults({});
      const done = await e.settleOpenShutdowns(new AbortController().signal);
      assert.ok(done.includes("started CT 101 again (vzdump shut it down (stop mode) and ended before starting it again)"), done.join("\n"));
      assert.deepEqual([node.pve.guest(101)!.lock, node.pve.guest(101)!.runtime?.status], [undefined, "running"]);
      assert.deepEqual(await e.settleOpenShutdowns(new AbortController().signal), [], "settled: nothing more to do");
    } finally {
      await killVzdumpTree(node, orphan.pid!);
    }
  });

  it("a stop-mode backup Proxmox started itself is recorded the same way; its vzdump dies while the agent runs: the recheck starts the CT", async () => {
    seedCt();
    const record = newJobRecord({ id: JOB, guestId: "101", engine: "vzdump", policy: QuiescePolicy.QUIESCE_POLICY_FAIL, idempotencyKey: JOB, quiesceTimeoutMs: 1_000, requestedBy: "vzdump (started by Proxmox)", now: Date.now() });
    jobs.createJob({ ...record, phase: Phase.PHASE_QUIESCING }, [], Date.now());
    // As the agent follows it (./foreign-jobs.ts): a job for the guest, its shutdowns recorded.
    onForeign = (m) =>
      followForeignBackup(m, recordingHooks(), { runner: node.runner, pve: node.config, log: silentLogger(), clock: systemClock, shutdowns: stopModeRecorder(shutdowns, { jobId: JOB, vmid: 101, vmtype: "lxc" }, systemClock) });
    node.pve.setFaults({ slowArchive: { chunkBytes: 8 * 1024, delayMs: 100 } });
    const scheduled = spawn(join(node.pve.binDir, "vzdump"), ["101", "--mode", "stop", "--storage", "local", "--compress", "zstd", "--script", node.hookScriptPath], { env: { ...process.env, ...node.env }, stdio: "ignore" });
    const exited = new Promise((r) => scheduled.on("close", r));
    try {
      await waitUntil(() => readdirSync(node.dumpDir).some((f) => f.endsWith(".tar.dat")) && node.pve.guest(101)!.runtime?.status === "stopped");
      assert.ok(shutdowns.get(JOB) !== undefined, "recorded at its pre-stop, like the agent's own runs");
      await killVzdumpTree(node, scheduled.pid!);
      await exited;
      node.pve.setFaults({});
      jobs.connection.prepare("UPDATE jobs SET phase = ? WHERE id = ?").run("failed", JOB); // the followed job fails (no log-end)
      const done = await engine("stop").settleOpenShutdowns(new AbortController().signal);
      assert.ok(done.includes("started CT 101 again (vzdump shut it down (stop mode) and ended before starting it again)"), done.join("\n"));
      assert.deepEqual([node.pve.guest(101)!.lock, node.pve.guest(101)!.runtime?.status], [undefined, "running"]);
    } finally {
      await killVzdumpTree(node, scheduled.pid!);
    }
  });

  it("cancelled while lxc-stop runs (vm_stop's eval swallows the TERM): vzdump is stopped through its worker's group and the CT runs again", async () => {
    // The CT takes 1.5 s to shut down; the cancel's TERM lands in the middle and is lost, as on a real
    // node, and vzdump goes on. Killing vzdump's CLI process after the grace (what a plain launcher
    // does) lets the worker die of SIGPIPE after it unlocked the CT and before it starts it again.
    seedCt();
    node.pve.setOptions({ shutdownMs: 1_500 });
    node.pve.setFaults({ slowArchive: { chunkBytes: 8 * 1024, delayMs: 200 } });
    const cancel = new AbortController();
    const hooks = recordingHooks();
    const running = run(hooks, "stop", cancel.signal, 3_000);
    const outcome = assert.rejects(running, (e: unknown) => e instanceof LullError && e.code === "LULL_E_CANCELLED");
    await waitUntil(() => shutdowns.get(JOB) !== undefined);
    await new Promise((r) => setTimeout(r, 300)); // lxc-stop is waiting for the CT
    assert.equal(node.pve.guest(101)!.runtime?.status, "running", "still shutting down when the cancel comes");
    cancel.abort();
    await outcome;
    const g = node.pve.guest(101)!;
    assert.deepEqual([g.lock, g.runtime?.status], [undefined, "running"], "the CT runs again when the cancelled run has ended");
    assert.ok(!readdirSync(node.dumpDir).some((f) => f.endsWith(".dat") || f.endsWith(".tmp")), readdirSync(node.dumpDir).join(", "));
    const calls = node.pve.calls("vzdump");
    assert.equal(node.pve.vzdumpWorkerOf(calls.at(-1)!.pid), undefined, "no vzdump worker left running");
  });
});
