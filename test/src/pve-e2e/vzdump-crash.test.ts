// lull-agent killed (-9) during a vzdump backup, on a (fake) Proxmox node with a real controller:
// the hook never keeps vzdump waiting for a dead agent, the restarted agent settles the job
// (LULL_E_AGENT_RESTARTED, the phase it died in) and cleans up what the killed run left — a stale
// `lock: backup`, the partial `.dat`, vzdump's snapshot — but only while no vzdump runs.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { Phase, StackState } from "@lull/proto";
import { phaseName } from "@lull/shared";
import { isPidAlive } from "../support/process.js";
import { waitFor } from "../support/temp.js";
import { PveSite, stackRunning } from "./pve-site.js";

let site: PveSite;

before(async () => {
  site = await PveSite.start({
    guests: [{ id: "101" }],
    seed(pve) {
      pve.addContainer(101, { hostname: "web01", rootfs: { storage: "local-lvm", files: { "etc/hostname": "web01\n", "srv/blob": randomBytes(256 * 1024) } } });
      pve.addContainer(106, { hostname: "busy", rootfs: { storage: "local-lvm", files: { "etc/hostname": "busy\n", "srv/blob": randomBytes(96 * 1024) } } });
    },
    stacks: [{ guestId: "101", name: "app" }],
  });
});

after(async () => {
  await site?.teardown();
});

/** The pid of the last vzdump the agent started (calls.log). */
function lastVzdumpPid(): number {
  const call = site.pve.calls("vzdump").at(-1);
  assert.ok(call, "vzdump ran");
  return call.pid;
}

describe("the agent killed during a vzdump backup", () => {
  it("while the hook waits at pre-stop: vzdump is not held (the hook vetoes at once), the restarted agent settles the job and unlocks", async () => {
    const client = site.agent.client();
    // A second stack of the guest that never acknowledges keeps the barrier (and so the hook) waiting.
    await client.api.registerStack({ guestId: "101", stack: "ghost", controllerId: "ghost-1", leaseTtlMs: 60_000 });
    const job = (await client.startBackup("101", { requestedBy: "e2e" })).job!;
    await client.waitForJob("101", job.id, (j) => j.stacks.some((s) => s.stack === "app" && s.state === StackState.STACK_STATE_QUIESCED), 30_000);
    assert.ok(site.pve.calls("hook").some((c) => c.args[0] === "pre-stop" && c.args[2] === "101"), "the hook is at pre-stop");
    const vzdumpPid = lastVzdumpPid();
    assert.ok(isPidAlive(vzdumpPid));

    await site.agent.kill9();
    const killedAt = Date.now();
    await waitFor("vzdump to end", () => !isPidAlive(vzdumpPid), 20_000);
    const heldMs = Date.now() - killedAt;
    assert.ok(heldMs < 10_000, `vzdump ended ${heldMs} ms after the agent died (the hook's pre-stop timeout is 120 s)`);

    await site.agent.restart();
    const restarted = site.agent.client();
    await restarted.api.unregisterStack({ guestId: "101", stack: "ghost", controllerId: "ghost-1" });
    const settled = await restarted.getJob("101", job.id);
    assert.equal(phaseName(settled.phase), "failed");
    assert.equal(settled.errorCode, "LULL_E_AGENT_RESTARTED");
    assert.equal(settled.failedIn, Phase.PHASE_QUIESCING);
    // No vzdump runs any more: whatever lock the killed run left is gone, and the stack runs again.
    assert.equal(site.pve.guest(101)!.lock, undefined);
    await waitFor("the stack to run again", () => stackRunning(site.stack("app").dataDir), 30_000);
  });

  it("with its vzdump, while archiving: the restarted agent leaves the lock and the .dat alone while a vzdump runs, and removes them once none does", async () => {
    site.pve.setFaults({ slowArchive: { chunkBytes: 8 * 1024, delayMs: 300 } });
    try {
      const client = site.agent.client();
      const job = (await client.startBackup("101", { requestedBy: "e2e" })).job!;
      await client.waitForJob("101", job.id, (j) => j.phase === Phase.PHASE_ARCHIVING, 30_000);
      await waitFor("the partial archive", () => site.dumpFiles().some((f) => f.startsWith("vzdump-lxc-101-") && f.endsWith(".tar.dat")), 10_000);
      // The agent and its vzdump die together (the unit's cgroup killed, an OOM kill): vzdump's own cleanup never runs.
      const vzdumpPid = lastVzdumpPid();
      const worker = site.pve.killVzdump(vzdumpPid, "SIGKILL"); // its CLI process and its forked worker
      await site.agent.kill9();
      await waitFor("vzdump to end", () => !isPidAlive(vzdumpPid) && (worker === undefined || !isPidAlive(worker)), 5_000);
      const leftDat = site.dumpFiles().filter((f) => f.startsWith("vzdump-lxc-101-") && f.endsWith(".dat"));
      assert.equal(leftDat.length, 1, `the killed run left its .dat: ${site.dumpFiles().join(", ")}`);
      assert.equal(site.pve.guest(101)!.lock, "backup", "the killed run left lock: backup");
      assert.ok(site.pve.lvs().some((lv) => lv.name === "snap_vm-101-disk-0_vzdump"), "and vzdump's snapshot");

      // Another vzdump (of another guest) runs while the agent starts again: guest locks and partial archives stay.
      const other = site.runVzdump(["106", "--mode", "snapshot", "--storage", "local", "--compress", "0"]);
      await waitFor("the other vzdump to hold the lock", () => site.pve.state.exists("run/vzdump.pid") && site.dumpFiles().some((f) => f.startsWith("vzdump-lxc-106-") && f.endsWith(".dat")), 20_000);
      await site.agent.restart();
      const settled = await site.agent.client().getJob("101", job.id);
      assert.equal(phaseName(settled.phase), "failed");
      assert.equal(settled.errorCode, "LULL_E_AGENT_RESTARTED");
      assert.equal(settled.failedIn, Phase.PHASE_ARCHIVING);
      await site.agent.proc.waitForLog((l) => l.msg === "start-up recovery finished", 10_000);
      assert.ok(site.agent.proc.logs.some((l) => l.msg === "vzdump is running: guest locks, frozen guests and partial archives left alone"));
      assert.equal(site.pve.guest(101)!.lock, "backup", "left alone while a vzdump runs");
      assert.deepEqual(site.dumpFiles().filter((f) => f.startsWith("vzdump-lxc-101-") && f.endsWith(".dat")), leftDat);
      assert.equal((await other.result).exitCode, 0);
      site.pve.setFaults({});
      // The stack was resumed at snapshotted, before the kill; it still runs.
      assert.ok(await stackRunning(site.stack("app").dataDir));

      // No vzdump runs now: the next start cleans up.
      await site.agent.restart();
      await site.agent.proc.waitForLog((l) => l.msg === "start-up recovery finished", 10_000);
      assert.equal(site.pve.guest(101)!.lock, undefined, "stale lock removed");
      assert.deepEqual(site.dumpFiles().filter((f) => f.endsWith(".dat")), [], "partial archive removed");
      assert.ok(!site.pve.lvs().some((lv) => lv.name.includes("vzdump")), "vzdump's snapshot removed");
      assert.equal(site.pve.guest(101)!.parent, undefined);
      const after = await site.agent.client().backup("101", 60_000, { requestedBy: "e2e" });
      assert.equal(phaseName(after.phase), "done", `the next backup works: ${after.errorCode} ${after.errorMessage}`);
    } finally {
      site.pve.setFaults({});
    }
  });
});
