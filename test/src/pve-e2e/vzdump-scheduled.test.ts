// Backups Proxmox starts by itself (pvescheduler, the GUI, `vzdump` by hand), with Lull's hook as
// their script: the fake vzdump is run directly, as pvescheduler would, while the real agent and a
// real controller run. The agent creates a job for it; the controller quiesces and resumes its
// stack for that job exactly as for the agent's own runs; the job ends with vzdump's archive.
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { after, before, describe, it } from "node:test";
import { Consistency, EventKind, Phase, SnapshotMode, StackState, type Event } from "@lull/proto";
import { isTerminal, phaseName } from "@lull/shared";
import { phaseSequence } from "../support/agent-client.js";
import { readResumedLog } from "../support/controller-process.js";
import { waitFor } from "../support/temp.js";
import { PveSite, stackRunning } from "./pve-site.js";

let site: PveSite;

before(async () => {
  site = await PveSite.start({
    guests: [{ id: "101" }],
    seed(pve) {
      pve.addContainer(101, { hostname: "web01", rootfs: { storage: "local-lvm", files: { "etc/hostname": "web01\n", "srv/data": "rows\n" } } });
      // On this node but not backed up by this agent: Proxmox backs it up, Lull stays out of it.
      pve.addContainer(105, { hostname: "other", rootfs: { storage: "local-lvm", files: { "etc/hostname": "other\n" } } });
    },
    stacks: [{ guestId: "101", name: "app" }],
  });
});

after(async () => {
  await site?.teardown();
});

describe("backups Proxmox starts by itself (the scheduler path)", () => {
  it("vzdump run directly with the installed hook: a job appears, the controller quiesces and resumes, the job ends done", async () => {
    const client = site.agent.client();
    const watch = client.collectEvents({ guestId: "101" }, (e) => e.kind === EventKind.EVENT_KIND_PHASE && e.phase === Phase.PHASE_DONE, 60_000);
    const mark = site.stack("app").controller.proc.mark();
    // As pvescheduler runs a job of /etc/pve/jobs.cfg: two guests of this node, one of them Lull's.
    const vzdump = site.runVzdump(["101", "105", "--mode", "snapshot", "--script", site.hookScriptPath, "--storage", "local", "--compress", "zstd"]);
    const events: Event[] = await watch;
    const run = await vzdump.result;
    assert.equal(run.exitCode, 0, run.stdout + run.stderr);

    const jobs = await client.listJobs("101");
    assert.equal(jobs.length, 1);
    const job = await client.waitForJob("101", jobs[0]!.id, (j) => j.stacks.every((s) => s.state === StackState.STACK_STATE_RESUMED), 20_000);
    assert.equal(phaseName(job.phase), "done", `${job.errorCode}: ${job.errorMessage}`);
    assert.equal(job.requestedBy, "vzdump (started by Proxmox)");
    assert.equal(job.engine, "vzdump");
    assert.deepEqual(phaseSequence(events.filter((e) => e.jobId === job.id)), ["queued", "quiescing", "snapshotting", "snapshotted", "archiving", "done"]);
    assert.equal(job.mode, SnapshotMode.SNAPSHOT_MODE_SNAPSHOT);
    assert.equal(job.consistency, Consistency.CONSISTENCY_APP);

    // The controller stopped its stack for this job and started it again at snapshotted.
    const controller = site.stack("app").controller.proc;
    const resumed = readResumedLog(await controller.waitForLog((l) => l.msg === "stack resumed" && l.jobId === job.id, 20_000, mark));
    assert.equal(resumed.early, true);
    assert.ok(controller.logs.slice(mark).some((l) => l.msg === "quiescing" && l.jobId === job.id), "the controller quiesced for the job");
    assert.equal(job.stacks[0]?.resumedEarly, true);
    assert.ok(await stackRunning(site.stack("app").dataDir));

    // The archive is the one vzdump wrote for 101; 105 was backed up too, without a job.
    assert.match(job.archivePath, /\/vzdump-lxc-101-[0-9_-]+\.tar\.zst$/);
    assert.ok(existsSync(job.archivePath));
    assert.ok(site.dumpFiles().some((f) => /^vzdump-lxc-105-[0-9_-]+\.tar\.zst$/.test(f)), site.dumpFiles().join(", "));
    assert.deepEqual(await client.listJobs("101", true), []);
    assert.match(run.stdout, /INFO: lull: stacks of guest 101 quiesced; vzdump goes on in snapshot mode/);
  });

  it("the followed vzdump dies without log-end (SIGKILL): the job fails within seconds, the stack was already resumed", async () => {
    site.pve.setFaults({ slowArchive: { chunkBytes: 4 * 1024, delayMs: 200 } });
    try {
      const client = site.agent.client();
      const vzdump = site.runVzdump(["101", "--mode", "snapshot", "--script", site.hookScriptPath, "--storage", "local", "--compress", "0"]);
      const job = await waitFor("a job for the backup", async () => (await client.listJobs("101", true))[0], 20_000);
      // Killed once the stack runs again (resumed at snapshotted), while vzdump still archives slowly.
      const resumed = await client.waitForJob("101", job.id, (j) => j.stacks.length > 0 && j.stacks.every((s) => s.state === StackState.STACK_STATE_RESUMED), 30_000);
      assert.ok(!isTerminal(resumed.phase), `still running when killed (${phaseName(resumed.phase)})`);
      // Both processes, as a crash does (OOM, the unit's cgroup): killing only the CLI leaves its
      // forked worker running, which then dies of SIGPIPE through its own error path.
      const worker = site.pve.killVzdump(vzdump.pid!, "SIGKILL");
      assert.ok(worker !== undefined, "vzdump's worker was running");
      const killedAt = Date.now();
      const ended = await client.waitForEnd("101", job.id, 15_000);
      assert.ok(Date.now() - killedAt < 10_000, `settled ${Date.now() - killedAt} ms after the kill`);
      assert.equal(phaseName(ended.phase), "failed");
      assert.equal(ended.errorCode, "LULL_E_COMMAND_FAILED");
      assert.match(ended.errorMessage, /^vzdump \(pid \d+\) ended without finishing the backup of guest 101 \(no log-end hook\)$/);
      assert.ok([Phase.PHASE_SNAPSHOTTED, Phase.PHASE_ARCHIVING].includes(ended.failedIn), `failed in ${phaseName(ended.failedIn)}`);
      assert.equal(ended.stacks[0]?.resumedEarly, true);
      assert.ok(await stackRunning(site.stack("app").dataDir));
      await vzdump.result;
    } finally {
      site.pve.setFaults({});
    }
  });
});
