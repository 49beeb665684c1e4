// QEMU in stop mode on a (fake) Proxmox node with a real agent and a real controller, where vzdump's
// own clean-up leaves a VM that ran before its backup stopped (or started for nothing):
//   - a cancel while `qm shutdown` runs: the TERM dies out of qm shutdown, so stop_vm throws and
//     vzdump never sets its restart flag — but the VM was asked to power down and goes down on its
//     own time, after vzdump has gone. The agent must start it again once it is down.
//   - the agent and its vzdump killed while the kvm vzdump started paused for the backup is in
//     `prelaunch`: the restarted agent stops that kvm and starts the VM (never `qm resume`, which
//     would boot a VM whose user had stopped it) — and leaves a VM that was stopped before stopped.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Phase } from "@lull/proto";
import { phaseName } from "@lull/shared";
import { isPidAlive } from "../support/process.js";
import { waitFor } from "../support/temp.js";
import { PveSite, stackRunning } from "./pve-site.js";

let site: PveSite;

before(async () => {
  site = await PveSite.start({
    guests: [{ id: "100", mode: "stop" }, { id: "107", mode: "stop" }],
    seed(pve) {
      pve.addVm(100, { name: "db", disks: [{ key: "scsi0", storage: "local-lvm" }], agent: true });
      pve.addVm(107, { name: "cold", status: "stopped", disks: [{ key: "scsi0", storage: "local-lvm" }] });
    },
    stacks: [{ guestId: "100", name: "db" }],
    vzdump: { stopGraceMs: 6_000, shutdownRecheckMs: 1_000 },
  });
});

after(async () => {
  await site?.teardown();
});

const vm = (id: number) => site.pve.guest(id);
const qmCalls = (verb: string, vmid: string) => site.pve.calls("qm").filter((c) => c.args[0] === verb && c.args[1] === vmid);
const lastCalls = () => site.pve.calls().map((c) => [c.tool, ...c.args].join(" ")).slice(-14);

async function waitForVm(what: string, id: number, ok: (g: ReturnType<typeof vm>) => boolean, timeoutMs: number): Promise<void> {
  await waitFor(what, () => ok(vm(id)), timeoutMs).catch((err: unknown) => {
    throw new Error(`${err instanceof Error ? err.message : String(err)}: ${JSON.stringify({ guest: vm(id), calls: lastCalls() })}`);
  });
}

/** Kills the job's vzdump (its CLI and its forked worker) and the agent together, as an OOM kill or the unit's cgroup does. */
async function killBoth(): Promise<void> {
  const call = site.pve.calls("vzdump").at(-1)!;
  const worker = site.pve.killVzdump(call.pid, "SIGKILL");
  await site.agent.kill9();
  await waitFor("vzdump to end", () => !isPidAlive(call.pid) && (worker === undefined || !isPidAlive(worker)), 5_000);
}

/** Starts a backup of `vmid`, waits for its kvm in prelaunch (held there by the fake), and kills agent and vzdump. */
async function crashInPrelaunch(vmid: number): Promise<string> {
  site.pve.setFaults({ prelaunchHoldMs: 30_000 });
  try {
    const jobId = (await site.agent.client().startBackup(String(vmid), { requestedBy: "e2e" })).job!.id;
    await waitForVm("vzdump to start the kvm paused (prelaunch)", vmid, (g) => g?.runtime?.status === "prelaunch", 30_000);
    await killBoth();
    return jobId;
  } finally {
    site.pve.setFaults({});
  }
}

describe("QEMU stop mode: a VM vzdump left down is running again", () => {
  it("cancelled while qm shutdown runs: ends cancelled; the VM, which powers off after vzdump has gone, is started again; its stack runs", async () => {
    site.pve.setOptions({ shutdownMs: 2_500 });
    try {
      const jobId = (await site.agent.client().startBackup("100", { requestedBy: "e2e" })).job!.id;
      const shuttingDown = () => (vm(100)?.runtime as { shutdownDoneAt?: number } | undefined)?.shutdownDoneAt !== undefined;
      await waitFor("vzdump to ask the VM to shut down", shuttingDown, 30_000);
      await site.agent.client().cancel("100", jobId, "e2e: cancel during qm shutdown");
      const job = await site.agent.client().waitForEnd("100", jobId, 60_000);
      assert.equal(phaseName(job.phase), phaseName(Phase.PHASE_CANCELLED), job.errorMessage);
      // vzdump died out of qm shutdown and unlocked the VM without starting it; the VM goes down later.
      await waitForVm("the VM to power off and be started again", 100, (g) => g?.runtime?.status === "running" && g.lock === undefined && qmCalls("start", "100").length === 1, 30_000);
      assert.equal(qmCalls("resume", "100").length, 0);
      const started = await site.agent.proc.waitForLog((l) => l.msg === "guest shut down by vzdump started again" && l.jobId === jobId, 10_000);
      assert.deepEqual(started.argv, ["qm", "start", "100"]);
      await waitFor("the stack to run again", () => stackRunning(site.stack("db").dataDir), 30_000);
      const cli = site.pve.calls("vzdump").at(-1)!;
      assert.equal(site.pve.vzdumpWorkerOf(cli.pid), undefined, "no vzdump worker left running");
    } finally {
      site.pve.setOptions({ shutdownMs: 0 });
    }
    // Nothing is left for the next backup, and vzdump restarts the VM itself then.
    const next = await site.agent.client().backup("100", 60_000, { requestedBy: "e2e" });
    assert.equal(phaseName(next.phase), "done", `${next.errorCode} ${next.errorMessage}`);
    assert.equal(vm(100)?.runtime?.status, "running");
    assert.equal(qmCalls("start", "100").length, 1, "vzdump started it itself this time");
  });

  it("agent and vzdump killed while the kvm is in prelaunch: the restarted agent stops it and starts the VM, never resumes it; its stack runs", async () => {
    const startsBefore = qmCalls("start", "100").length;
    const jobId = await crashInPrelaunch(100);
    assert.deepEqual([vm(100)?.lock, vm(100)?.runtime?.status], ["backup", "prelaunch"], "the crash left the VM locked in prelaunch");
    await site.agent.restart();
    await site.agent.proc.waitForLog((l) => l.msg === "start-up recovery finished", 15_000);
    await waitForVm("the VM to run again", 100, (g) => g?.runtime?.status === "running" && g.lock === undefined, 20_000);
    assert.equal(qmCalls("resume", "100").length, 0, "a prelaunch kvm is never resumed");
    assert.equal(qmCalls("stop", "100").length, 1, "the kvm started for the backup is stopped");
    assert.equal(qmCalls("start", "100").length, startsBefore + 1, "then the VM is started");
    const settled = await site.agent.client().getJob("100", jobId);
    assert.equal(phaseName(settled.phase), "failed");
    assert.equal(settled.errorCode, "LULL_E_AGENT_RESTARTED");
    await waitFor("the stack to run again", () => stackRunning(site.stack("db").dataDir), 30_000);
  });

  it("a VM that was stopped before its backup, killed while in prelaunch: its kvm is stopped, the VM is neither resumed nor started", async () => {
    const jobId = await crashInPrelaunch(107);
    await site.agent.restart();
    await site.agent.proc.waitForLog((l) => l.msg === "start-up recovery finished", 15_000);
    await waitForVm("the VM to be stopped and unlocked", 107, (g) => g?.runtime?.status === "stopped" && g.lock === undefined, 20_000);
    assert.equal(qmCalls("resume", "107").length, 0);
    assert.equal(qmCalls("start", "107").length, 0);
    const settled = await site.agent.client().getJob("107", jobId);
    assert.equal(phaseName(settled.phase), "failed");
  });
});
