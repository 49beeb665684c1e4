// lull-agent and its vzdump killed (-9) together while vzdump has a container shut down in stop
// mode, on a (fake) Proxmox node with a real controller: the restarted agent settles the job
// (failed, LULL_E_AGENT_RESTARTED), clears the stale `lock: backup` and starts the container again
// with `pct start <vmid>`, noting it on the job; its stack runs again. A container that was already
// stopped before its backup stays stopped. The agent killed alone while its vzdump lives on: the
// restarted agent leaves the guest alone while that vzdump runs and starts it once it died.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { EventKind, Phase, type Event } from "@lull/proto";
import { phaseName } from "@lull/shared";
import { isPidAlive } from "../support/process.js";
import { waitFor } from "../support/temp.js";
import { PveSite, stackRunning } from "./pve-site.js";

let site: PveSite;

before(async () => {
  site = await PveSite.start({
    guests: [{ id: "101", mode: "stop" }, { id: "106", mode: "stop" }],
    seed(pve) {
      pve.addContainer(101, { hostname: "web01", rootfs: { storage: "local-lvm", files: { "etc/hostname": "web01\n", "srv/blob": randomBytes(256 * 1024) } } });
      pve.addContainer(106, { hostname: "cold", status: "stopped", rootfs: { storage: "local-lvm", files: { "etc/hostname": "cold\n", "srv/blob": randomBytes(256 * 1024) } } });
    },
    stacks: [{ guestId: "101", name: "app" }],
    vzdump: { shutdownRecheckMs: 1_000 },
  });
});

after(async () => {
  await site?.teardown();
});

/** Kills the job's vzdump and the agent together (the unit's cgroup, an OOM kill) once vzdump writes its archive. */
async function killBothWhileArchiving(guestId: string, jobId: string): Promise<void> {
  await site.agent.client().waitForJob(guestId, jobId, (j) => j.phase === Phase.PHASE_ARCHIVING, 30_000);
  await waitFor("the partial archive", () => site.dumpFiles().some((f) => f.startsWith(`vzdump-lxc-${guestId}-`) && f.endsWith(".tar.dat")), 10_000);
  const call = site.pve.calls("vzdump").at(-1);
  assert.ok(call && call.args[0] === guestId, "the job's vzdump runs");
  const worker = site.pve.killVzdump(call.pid, "SIGKILL"); // its CLI process and its forked worker
  await site.agent.kill9();
  await waitFor("vzdump to end", () => !isPidAlive(call.pid) && (worker === undefined || !isPidAlive(worker)), 5_000);
}

async function jobEvents(guestId: string, jobId: string, until: (e: Event) => boolean): Promise<Event[]> {
  return site.agent.client().collectEvents({ guestId, jobId }, until, 10_000);
}

const startCalls = (vmid: string) => site.pve.calls("pct").filter((c) => c.args[0] === "start" && c.args[1] === vmid);

describe("the agent and vzdump killed while vzdump has a guest shut down (stop mode)", () => {
  it("the restarted agent unlocks the container, starts it again (pct start), notes it on the failed job; the stack runs again", async () => {
    site.pve.setFaults({ slowArchive: { chunkBytes: 8 * 1024, delayMs: 300 } });
    let jobId: string;
    try {
      jobId = (await site.agent.client().startBackup("101", { requestedBy: "e2e" })).job!.id;
      await waitFor("vzdump to shut the container down", () => site.pve.guest(101)!.runtime?.status === "stopped", 30_000);
      await killBothWhileArchiving("101", jobId);
    } finally {
      site.pve.setFaults({});
    }
    assert.deepEqual([site.pve.guest(101)!.lock, site.pve.guest(101)!.runtime?.status], ["backup", "stopped"], "the killed run left the CT shut down and locked");
    await site.agent.restart();
    await site.agent.proc.waitForLog((l) => l.msg === "start-up recovery finished", 10_000);

    assert.deepEqual([site.pve.guest(101)!.lock, site.pve.guest(101)!.runtime?.status], [undefined, "running"]);
    assert.deepEqual(startCalls("101").map((c) => c.args), [["start", "101"]], "pct start <vmid>, in the real tool's syntax");
    const started = site.agent.proc.logs.find((l) => l.msg === "guest shut down by vzdump started again");
    assert.ok(started, "the start is logged");
    assert.deepEqual([started.vmid, started.argv], [101, ["pct", "start", "101"]]);
    assert.match(String(started.reason), /vzdump shut it down \(stop mode\) and ended before starting it again/);

    const settled = await site.agent.client().getJob("101", jobId);
    assert.equal(phaseName(settled.phase), "failed", "the job stays failed");
    assert.equal(settled.errorCode, "LULL_E_AGENT_RESTARTED");
    assert.equal(settled.failedIn, Phase.PHASE_ARCHIVING);
    const note = "guest 101: started again by the crash cleanup (pct start 101): vzdump shut it down (stop mode) and ended before starting it again";
    const events = await jobEvents("101", jobId, (e) => e.kind === EventKind.EVENT_KIND_NOTE && e.message === note);
    const failedAt = events.findIndex((e) => e.kind === EventKind.EVENT_KIND_PHASE && e.phase === Phase.PHASE_FAILED);
    assert.ok(failedAt >= 0 && failedAt < events.length - 1, "the note follows the failure");
    await waitFor("the stack to run again", () => stackRunning(site.stack("app").dataDir), 30_000);

    // Nothing is left for the next backup.
    const next = await site.agent.client().backup("101", 60_000, { requestedBy: "e2e" });
    assert.equal(phaseName(next.phase), "done", `${next.errorCode} ${next.errorMessage}`);
    assert.equal(site.pve.guest(101)!.runtime?.status, "running");
    assert.equal(startCalls("101").length, 1, "vzdump restarted it itself this time");
  });

  it("a container that was stopped before its backup stays stopped after the same crash", async () => {
    assert.equal(site.pve.guest(106)!.runtime?.status, "stopped");
    site.pve.setFaults({ slowArchive: { chunkBytes: 8 * 1024, delayMs: 300 } });
    let jobId: string;
    try {
      jobId = (await site.agent.client().startBackup("106", { requestedBy: "e2e" })).job!.id;
      await killBothWhileArchiving("106", jobId);
    } finally {
      site.pve.setFaults({});
    }
    assert.deepEqual([site.pve.guest(106)!.lock, site.pve.guest(106)!.runtime?.status], ["backup", "stopped"]);
    await site.agent.restart();
    await site.agent.proc.waitForLog((l) => l.msg === "start-up recovery finished", 10_000);

    assert.deepEqual([site.pve.guest(106)!.lock, site.pve.guest(106)!.runtime?.status], [undefined, "stopped"], "unlocked, not started");
    assert.deepEqual(startCalls("106"), []);
    const settled = await site.agent.client().getJob("106", jobId);
    assert.equal(phaseName(settled.phase), "failed");
    // No pre-stop came (the CT was not running), so no shutdown was recorded and the cleanup had nothing to decide.
    const cleaned = site.agent.proc.logs.find((l) => l.msg === "vzdump leftovers cleaned up");
    assert.ok(Array.isArray(cleaned?.done) && cleaned.done.includes("unlocked CT 106 (lock: backup)"), JSON.stringify(cleaned));
    assert.ok(!cleaned.done.some((d: string) => d.startsWith("started")), JSON.stringify(cleaned.done));
    assert.deepEqual(site.agent.proc.logs.filter((l) => String(l.msg).startsWith("guest shut down by vzdump")), []);
  });

  it("the agent killed alone: the restarted agent leaves the CT to the vzdump that still runs, and starts it once that vzdump died", async () => {
    const startsBefore = startCalls("101").length;
    site.pve.setFaults({ slowArchive: { chunkBytes: 8 * 1024, delayMs: 1_000 } });
    let jobId: string;
    let vzdumpPid: number;
    try {
      jobId = (await site.agent.client().startBackup("101", { requestedBy: "e2e" })).job!.id;
      await site.agent.client().waitForJob("101", jobId, (j) => j.phase === Phase.PHASE_ARCHIVING, 30_000);
      await waitFor("vzdump to shut the container down", () => site.pve.guest(101)!.runtime?.status === "stopped", 30_000);
      vzdumpPid = site.pve.calls("vzdump").at(-1)!.pid;
      await site.agent.kill9();
      assert.ok(isPidAlive(vzdumpPid), "vzdump outlives the agent (it archives silently)");
      await site.agent.restart();
      await site.agent.proc.waitForLog((l) => l.msg === "start-up recovery finished", 10_000);
      assert.ok(site.agent.proc.logs.some((l) => l.msg === "guest shut down by vzdump left for a later cleanup" && l.vmid === 101));
      assert.deepEqual([site.pve.guest(101)!.lock, site.pve.guest(101)!.runtime?.status], ["backup", "stopped"], "left alone while its vzdump runs");
      // That vzdump dies later (here: killed; a real one dies of SIGPIPE at its next output line).
      const worker = site.pve.killVzdump(vzdumpPid, "SIGKILL"); // its CLI process and its forked worker
      await waitFor("vzdump to end", () => !isPidAlive(vzdumpPid) && (worker === undefined || !isPidAlive(worker)), 5_000);
    } finally {
      site.pve.setFaults({});
    }
    await waitFor("the recheck to start the CT", () => site.pve.guest(101)!.runtime?.status === "running", 20_000);
    // Logged once the outcome is on the job: a note on an ended job reaches watchers that connect after it.
    await site.agent.proc.waitForLog((l) => l.msg === "guest shut down by vzdump started again" && l.jobId === jobId, 10_000);
    assert.equal(site.pve.guest(101)!.lock, undefined);
    assert.equal(startCalls("101").length, startsBefore + 1);
    const note = "guest 101: started again by the crash cleanup (pct start 101): vzdump shut it down (stop mode) and ended before starting it again";
    await jobEvents("101", jobId, (e) => e.kind === EventKind.EVENT_KIND_NOTE && e.message === note);
    const settled = await site.agent.client().getJob("101", jobId);
    assert.deepEqual([phaseName(settled.phase), settled.errorCode], ["failed", "LULL_E_AGENT_RESTARTED"]);
    await waitFor("the stack to run again", () => stackRunning(site.stack("app").dataDir), 30_000);
  });
});
