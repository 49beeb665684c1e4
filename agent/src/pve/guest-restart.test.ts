// The crash cleanup's restart of guests vzdump shut down in stop mode, against the fake toolbox and
// a real job database: started (pct/qm start, after the unlock) only when the decision says so;
// otherwise left, with the reason on the job; open while a vzdump runs; a failing start is noted,
// reported, and the rest of the cleanup still runs.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdirSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { afterEach, beforeEach, describe, it } from "node:test";
import { Phase, QuiescePolicy } from "@lull/proto";
import { createLogger, LullError, silentLogger, systemClock } from "@lull/shared";
import { newJobRecord } from "../jobs/job.js";
import { JobStore } from "../jobs/store.js";
import { PveCleanup } from "./cleanup.js";
import { noteSettledShutdowns } from "./guest-restart.js";
import { VzdumpShutdownStore } from "../engines/vzdump/shutdown-store.js";
import { killVzdump, killVzdumpTree, startFakePveNode, type FakePveNode } from "./testing/fake-pve.js";
import { waitUntil } from "../testing/wait.js";

const J1 = "j-00000000000000000000000001";
const J2 = "j-00000000000000000000000002";
let node: FakePveNode;
let jobs: JobStore;
let shutdowns: VzdumpShutdownStore;
let notes: Array<[string, string]>;
let logs: Array<Record<string, unknown>>;

function addJob(id: string, guestId: string, phase: Phase): void {
  const record = newJobRecord({ id, guestId, engine: "vzdump", policy: QuiescePolicy.QUIESCE_POLICY_FAIL, idempotencyKey: id, quiesceTimeoutMs: 1_000, requestedBy: "test", now: Date.now() });
  jobs.createJob({ ...record, phase }, [], Date.now());
}

function cleanup(noteJob: (jobId: string, message: string) => boolean = (id, m) => (notes.push([id, m]), true)): PveCleanup {
  const log = createLogger({ name: "test", level: "debug", destination: { write: (line: string) => void logs.push(JSON.parse(line) as Record<string, unknown>) } });
  return new PveCleanup({ pve: node.config, node: "pve1", runner: node.runner, log, clock: systemClock, shutdowns, noteJob });
}

/** What vzdump in stop mode leaves when it dies mid-archive: the CT shut down under lock: backup. */
function crashedStopMode(vmid = 101): void {
  node.pve.setLock(vmid, "backup");
  node.pve.setGuest(vmid, { status: "stopped" });
}

const argvOf = (tool: string) => node.runner.argvs().filter((a) => a[0] === tool);

beforeEach(async () => {
  node = await startFakePveNode();
  node.pve.addContainer(101, { rootfs: { storage: "local-lvm", files: { "data/blob": Buffer.alloc(256 * 1024, 1) } } });
  jobs = JobStore.open(join(node.dir, "agent.db"));
  shutdowns = new VzdumpShutdownStore(jobs.connection);
  notes = [];
  logs = [];
});
afterEach(async () => {
  jobs.close();
  await node.close();
});

describe("crash cleanup: guests vzdump shut down in stop mode", () => {
  it("vzdump killed mid-archive: unlocks the CT, sees it stopped, starts it, logs and notes why", async () => {
    node.pve.setFaults({ slowArchive: { chunkBytes: 8 * 1024, delayMs: 100 } });
    addJob(J1, "101", Phase.PHASE_FAILED);
    shutdowns.recordShutdown(J1, 101, "lxc", Date.now());
    await killVzdump(node, ["101", "--mode", "stop", "--storage", "local", "--compress", "zstd"], () => readdirSync(node.dumpDir).some((f) => f.endsWith(".tar.dat")));
    node.pve.setFaults({});
    assert.deepEqual([node.pve.guest(101)!.lock, node.pve.guest(101)!.runtime?.status], ["backup", "stopped"]);

    const done = await cleanup().sweep();
    assert.deepEqual(done.slice(0, 2), ["unlocked CT 101 (lock: backup)", "started CT 101 again (vzdump shut it down (stop mode) and ended before starting it again)"]);
    assert.deepEqual(argvOf("pct"), [
      ["pct", "config", "101", "--snapshot", "vzdump"],
      ["pct", "unlock", "101"],
      ["pct", "status", "101"],
      ["pct", "start", "101"],
    ]);
    assert.deepEqual([node.pve.guest(101)!.lock, node.pve.guest(101)!.runtime?.status], [undefined, "running"]);
    assert.deepEqual(notes, [[J1, "guest 101: started again by the crash cleanup (pct start 101): vzdump shut it down (stop mode) and ended before starting it again"]]);
    const settled = shutdowns.get(J1)!;
    assert.ok(settled.settledAt !== undefined && settled.notedAt !== undefined);
    assert.equal(settled.outcome, notes[0]![1]);
    const line = logs.find((l) => l.msg === "guest shut down by vzdump started again");
    assert.deepEqual([line?.jobId, line?.vmid, line?.argv], [J1, 101, ["pct", "start", "101"]]);
    assert.match(String(line?.reason), /ended before starting it again/);
    assert.deepEqual(shutdowns.open(), [], "settled once");
    assert.deepEqual(await cleanup().sweep(), [], "a second cleanup does nothing");
  });

  it("a stop-mode VM vzdump left in prelaunch (the kvm it started for the backup): qm stop, never qm resume, then qm start", async () => {
    // vzdump shut the running VM down, started kvm paused for the backup (QMP `prelaunch`) and died.
    node.pve.addVm(100, { disks: [{ key: "scsi0", storage: "local-lvm" }], lock: "backup" });
    node.pve.setGuest(100, { status: "prelaunch" });
    addJob(J1, "100", Phase.PHASE_FAILED);
    shutdowns.recordShutdown(J1, 100, "qemu", Date.now());
    const done = await cleanup().sweep();
    assert.deepEqual(done, [
      "unlocked VM 100 (lock: backup)",
      "stopped the kvm vzdump had started (prelaunch) for backing up VM 100",
      "started VM 100 again (vzdump shut it down (stop mode) and ended before starting it again)",
    ]);
    assert.ok(!argvOf("qm").some((a) => a[1] === "resume"), "a prelaunch kvm is never resumed");
    assert.deepEqual(argvOf("qm").at(-1), ["qm", "start", "100"]);
    assert.equal(node.pve.guest(100)!.runtime?.status, "running");
  });

  it("a VM that was stopped before its backup, left in prelaunch: stopped again, not booted", async () => {
    node.pve.addVm(100, { disks: [{ key: "scsi0", storage: "local-lvm" }], lock: "backup" });
    node.pve.setGuest(100, { status: "prelaunch" });
    const done = await cleanup().sweep();
    assert.deepEqual(done, ["unlocked VM 100 (lock: backup)", "stopped the kvm vzdump had started (prelaunch) for backing up VM 100"]);
    assert.ok(!argvOf("qm").some((a) => a[1] === "resume" || a[1] === "start"));
    assert.equal(node.pve.guest(100)!.runtime?.status, "stopped");
  });

  it("a VM: qm unlock, then qm status and qm start", async () => {
    node.pve.addVm(100, { disks: [{ key: "scsi0", storage: "local-lvm" }], lock: "backup", status: "stopped" });
    addJob(J1, "100", Phase.PHASE_FAILED);
    shutdowns.recordShutdown(J1, 100, "qemu", Date.now());
    const done = await cleanup().sweep();
    assert.deepEqual(done, ["unlocked VM 100 (lock: backup)", "started VM 100 again (vzdump shut it down (stop mode) and ended before starting it again)"]);
    assert.deepEqual(argvOf("qm"), [
      ["qm", "status", "100"],
      ["qm", "config", "100"],
      ["qm", "unlock", "100"],
      ["qm", "status", "100"],
      ["qm", "start", "100"],
    ]);
    assert.equal(node.pve.guest(100)!.runtime?.status, "running");
  });

  it("vzdump's own cleanup had unlocked it (pre-restart came) and died before the start: started", async () => {
    addJob(J1, "101", Phase.PHASE_FAILED);
    shutdowns.recordShutdown(J1, 101, "lxc", Date.now());
    shutdowns.recordRestartBegun(J1, Date.now());
    node.pve.setGuest(101, { status: "stopped" });
    assert.deepEqual(await cleanup().sweep(), ["started CT 101 again (vzdump shut it down (stop mode) and ended in its own cleanup, before starting it again)"]);
    assert.equal(node.pve.guest(101)!.runtime?.status, "running");
  });

  it("never starts a guest someone else took over: unlocked by another hand, or running again", async () => {
    node.pve.addContainer(102, { rootfs: { storage: "local-lvm" } });
    addJob(J1, "101", Phase.PHASE_FAILED);
    addJob(J2, "102", Phase.PHASE_FAILED);
    shutdowns.recordShutdown(J1, 101, "lxc", Date.now());
    // Shut down longer ago than the watch for a shutdown still in flight (vzdump's stopwait, 10 min).
    shutdowns.recordShutdown(J2, 102, "lxc", Date.now() - 11 * 60_000);
    node.pve.setGuest(101, { status: "stopped" }); // an operator unlocked it (and maybe started and stopped it)
    node.pve.setLock(102, "backup"); // started with --skiplock by an operator: running under the stale lock

    const done = await cleanup().sweep();
    assert.deepEqual(done, ["unlocked CT 102 (lock: backup)"]);
    assert.deepEqual(argvOf("pct").filter((a) => a[1] === "start"), []);
    assert.equal(node.pve.guest(101)!.runtime?.status, "stopped");
    const noteOf = (id: string) => notes.find(([j]) => j === id)?.[1] ?? "";
    assert.deepEqual(notes.map(([id]) => id).sort(), [J1, J2]);
    assert.match(noteOf(J1), /^guest 101: vzdump shut it down \(stop mode\) and did not start it again; the crash cleanup left it as it is: its lock: backup was removed since the shutdown/);
    assert.match(noteOf(J2), /left it as it is: it is running now$/);
    assert.deepEqual(shutdowns.open(), []);
  });

  it("a guest still running after vzdump died inside its shutdown is watched: the shutdown stays open, the guest is started once it is down", async () => {
    addJob(J1, "101", Phase.PHASE_FAILED);
    shutdowns.recordShutdown(J1, 101, "lxc", Date.now());
    node.pve.setLock(101, "backup"); // vzdump killed during lxc-stop: the CT still shuts down
    assert.deepEqual(await cleanup().sweep(), ["unlocked CT 101 (lock: backup)"]);
    assert.equal(shutdowns.get(J1)!.settledAt, undefined, "left open");
    assert.ok(shutdowns.get(J1)!.releasedAt !== undefined, "the cleanup's own unlock is recorded");
    assert.deepEqual(notes, []);
    assert.ok(logs.some((l) => l.msg === "guest shut down by vzdump left for a later cleanup" && /may still power off/.test(String(l.reason))));
    node.pve.setGuest(101, { status: "stopped" }); // it powered off
    assert.deepEqual(await cleanup().sweep(), ["started CT 101 again (vzdump asked it to shut down (stop mode) and ended before the shutdown finished; it powered off afterwards)"]);
    assert.equal(node.pve.guest(101)!.runtime?.status, "running");
    assert.deepEqual(shutdowns.open(), []);
  });

  it("leaves everything open while a vzdump runs; the next cleanup starts the guest", async () => {
    node.pve.addContainer(106, { rootfs: { storage: "local-lvm", files: { blob: Buffer.alloc(96 * 1024, 2) } } });
    addJob(J1, "101", Phase.PHASE_FAILED);
    shutdowns.recordShutdown(J1, 101, "lxc", Date.now());
    crashedStopMode();
    node.pve.setFaults({ slowArchive: { chunkBytes: 4 * 1024, delayMs: 200 } });
    const other = spawn(join(node.pve.binDir, "vzdump"), ["106", "--storage", "local", "--compress", "zstd"], { env: { ...process.env, ...node.env }, stdio: "ignore" });
    const closed = new Promise((r) => other.on("close", r));
    try {
      await waitUntil(() => readdirSync(node.dumpDir).some((f) => f.startsWith("vzdump-lxc-106-") && f.endsWith(".tar.dat")));
      assert.deepEqual(await cleanup().sweep(), []);
      assert.equal(shutdowns.get(J1)!.settledAt, undefined);
      assert.deepEqual(notes, []);
      assert.deepEqual([node.pve.guest(101)!.lock, node.pve.guest(101)!.runtime?.status], ["backup", "stopped"]);
      assert.ok(logs.some((l) => l.msg === "guest shut down by vzdump left for a later cleanup" && l.vmid === 101));
    } finally {
      await killVzdumpTree(node, other.pid!);
      await closed;
    }
    node.pve.setFaults({});
    assert.ok((await cleanup().sweep()).includes("started CT 101 again (vzdump shut it down (stop mode) and ended before starting it again)"));
  });

  it("a start that fails is logged, noted and reported; the rest of the cleanup still runs", async () => {
    addJob(J1, "101", Phase.PHASE_FAILED);
    shutdowns.recordShutdown(J1, 101, "lxc", Date.now());
    crashedStopMode();
    mkdirSync(join(node.dumpDir, "vzdump-lxc-101-2026_01_01-00_00_00.tmp"));
    node.pve.setFaults({ guestStartFail: "startup for container '101' failed" });
    await assert.rejects(cleanup().sweep(), (err: unknown) => {
      assert.ok(err instanceof LullError);
      assert.equal(err.code, "LULL_E_CLEANUP_FAILED");
      assert.match(err.message, /pct start 101: startup for container '101' failed/);
      return true;
    });
    assert.ok(!readdirSync(node.dumpDir).includes("vzdump-lxc-101-2026_01_01-00_00_00.tmp"), "partial archives still removed");
    assert.deepEqual([node.pve.guest(101)!.lock, node.pve.guest(101)!.runtime?.status], [undefined, "stopped"]);
    assert.deepEqual(notes, [[J1, "guest 101: the crash cleanup could not start it again (pct start 101: startup for container '101' failed); it stays stopped, start it by hand. vzdump shut it down (stop mode) and ended before starting it again"]]);
    assert.ok(logs.some((l) => l.msg === "guest shut down by vzdump could not be started" && l.vmid === 101 && l.level === "error"));
    assert.ok(shutdowns.get(J1)!.settledAt !== undefined, "not retried: the guest is unlocked now, so a later cleanup could not tell");
  });

  it("a job that has not ended is only considered for the run that ends now; its note goes through that run", async () => {
    addJob(J1, "101", Phase.PHASE_ARCHIVING);
    shutdowns.recordShutdown(J1, 101, "lxc", Date.now());
    crashedStopMode();
    assert.deepEqual(await cleanup().sweep(), [], "not even unlocked: the guest is its running job's");
    assert.deepEqual([node.pve.guest(101)!.lock, node.pve.guest(101)!.runtime?.status], ["backup", "stopped"]);
    const own: string[] = [];
    const done = await cleanup().sweep(undefined, { jobId: J1, note: (m) => void own.push(m) });
    assert.deepEqual(done, ["unlocked CT 101 (lock: backup)", "started CT 101 again (vzdump shut it down (stop mode) and ended before starting it again)"]);
    assert.equal(node.pve.guest(101)!.runtime?.status, "running");
    assert.deepEqual(own, ["guest 101: started again by the crash cleanup (pct start 101): vzdump shut it down (stop mode) and ended before starting it again"]);
    assert.deepEqual(notes, [], "the ending run's note goes through its own hooks, not the ledger");
  });

  it("a guest gone from the node is left; outcomes not noted yet are noted once a ledger is there", async () => {
    addJob(J1, "555", Phase.PHASE_FAILED);
    shutdowns.recordShutdown(J1, 555, "lxc", Date.now());
    assert.deepEqual(await cleanup(() => false).sweep(), []);
    assert.deepEqual(shutdowns.unnoted().map((s) => [s.jobId, s.outcome]), [[J1, "guest 555: vzdump shut it down (stop mode) and did not start it again; the crash cleanup left it as it is: the guest is no longer on this node"]]);
    assert.equal(noteSettledShutdowns(shutdowns, (id, m) => (notes.push([id, m]), true), systemClock, silentLogger()), 1);
    assert.deepEqual(notes.map(([id]) => id), [J1]);
    assert.deepEqual(shutdowns.unnoted(), []);
  });
});
