// End to end on a (fake) Proxmox node: the real lull-agent runs the fake vzdump with its installed
// hook; real lull-controllers stop and start real stack processes inside the "guests". What a user
// sees: the job's phases and events, when each stack was resumed, the archive vzdump reported,
// vzdump's own log, and the argv the agent ran (the fake's calls.log).
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { basename, join } from "node:path";
import { after, before, describe, it } from "node:test";
import { Consistency, EventKind, Phase, SnapshotMode, StackState, type Event, type Job } from "@lull/proto";
import { phaseName } from "@lull/shared";
import { phaseSequence } from "../support/agent-client.js";
import { waitFor } from "../support/temp.js";
import { PveSite, stackRunning } from "./pve-site.js";

const BLOB = randomBytes(384 * 1024);

let site: PveSite;

before(async () => {
  site = await PveSite.start({
    guests: [{ id: "101" }, { id: "102", mode: "stop" }, { id: "100" }, { id: "103" }, { id: "104" }],
    seed(pve) {
      pve.addContainer(101, { hostname: "web01", rootfs: { storage: "local-lvm", files: { "etc/hostname": "web01\n", "srv/blob": BLOB } } });
      pve.addContainer(102, { hostname: "mail", rootfs: { storage: "local-lvm", files: { "etc/hostname": "mail\n" } } });
      pve.addVm(100, { name: "db", disks: [{ key: "scsi0", storage: "local-lvm" }], agent: true });
      pve.addContainer(103, { hostname: "picky", rootfs: { storage: "local-lvm", files: { "etc/hostname": "picky\n" } } });
      pve.addContainer(104, { hostname: "cold", status: "stopped", rootfs: { storage: "local-lvm", files: { "etc/hostname": "cold\n" } } });
    },
    stacks: [
      { guestId: "101", name: "app" },
      { guestId: "102", name: "mailer" },
      { guestId: "100", name: "db" },
      { guestId: "103", name: "picky", stop: ["/bin/false"] },
    ],
  });
});

after(async () => {
  await site?.teardown();
});

/** Starts a backup and collects the job's events until it ended. */
async function backup(guestId: string, timeoutMs = 60_000): Promise<{ job: Job; events: Event[] }> {
  const client = site.agent.client();
  const started = await client.startBackup(guestId, { requestedBy: "e2e" });
  const jobId = started.job!.id;
  const terminal = (e: Event) => e.kind === EventKind.EVENT_KIND_PHASE && [Phase.PHASE_DONE, Phase.PHASE_FAILED, Phase.PHASE_CANCELLED].includes(e.phase);
  const events = await client.collectEvents({ jobId }, terminal, timeoutMs);
  // The fallback resume (at the end) is reported just after the job ended.
  const job = await client.waitForJob(guestId, jobId, (j) => j.stacks.every((s) => s.state === StackState.STACK_STATE_RESUMED || s.state === StackState.STACK_STATE_REFUSED), 20_000);
  return { job, events };
}

const notes = (events: readonly Event[]) => events.filter((e) => e.kind === EventKind.EVENT_KIND_NOTE).map((e) => e.message);

function vzdumpArgv(vmid: number): string[][] {
  return site.pve.calls("vzdump").filter((c) => c.args[0] === String(vmid)).map((c) => c.args);
}

describe("vzdump engine end to end (real agent, real controllers, fake Proxmox toolbox)", () => {
  it("LXC snapshot mode: the stack resumes at snapshotted while vzdump still archives; done with vzdump's archive", async () => {
    site.pve.setFaults({ slowArchive: { chunkBytes: 32 * 1024, delayMs: 200 } });
    try {
      const { job, events } = await backup("101");
      assert.equal(phaseName(job.phase), "done", `${job.errorCode}: ${job.errorMessage}`);
      assert.deepEqual(phaseSequence(events), ["queued", "quiescing", "snapshotting", "snapshotted", "archiving", "done"]);
      assert.equal(job.mode, SnapshotMode.SNAPSHOT_MODE_SNAPSHOT);
      assert.equal(job.consistency, Consistency.CONSISTENCY_APP);
      const stack = job.stacks.find((s) => s.stack === "app")!;
      assert.equal(stack.state, StackState.STACK_STATE_RESUMED);
      assert.equal(stack.resumedEarly, true);
      const resumedAt = stack.resumedAt!.getTime();
      const finishedAt = job.finishedAt!.getTime();
      assert.ok(resumedAt >= job.snapshotAt!.getTime(), "not resumed before the snapshot existed");
      assert.ok(finishedAt - resumedAt > 1_000, `resumed ${finishedAt - resumedAt} ms before vzdump finished (slow archive should give > 1 s)`);
      // The archive is the one vzdump wrote (its TARGET), next to vzdump's own log of this run.
      assert.match(job.archivePath, new RegExp(`^${site.dumpDir}/vzdump-lxc-101-\\d{4}_\\d\\d_\\d\\d-\\d\\d_\\d\\d_\\d\\d\\.tar\\.zst$`));
      assert.ok(existsSync(job.archivePath));
      assert.ok(job.archiveBytes > BLOB.length / 2, `archive of ${job.archiveBytes} bytes`);
      assert.ok(site.dumpFiles().includes(basename(job.archivePath).replace(/\.tar\.zst$/, ".log")));
      assert.ok(notes(events).some((n) => n.includes(`creating vzdump archive '${job.archivePath}'`)), notes(events).join("\n"));
      assert.ok(notes(events).some((n) => n.includes("lull: stacks of guest 101 quiesced")));
      assert.ok(await stackRunning(site.stack("app").dataDir));
      assert.deepEqual(vzdumpArgv(101), [["101", "--mode", "snapshot", "--script", site.hookScriptPath, "--storage", "local", "--compress", "zstd", "--lockwait", "1"]]);
      assert.deepEqual(
        site.pve.calls("hook").filter((c) => c.args[2] === "101").map((c) => c.args.slice(0, 2).join(" ")),
        ["backup-start snapshot", "pre-stop snapshot", "pre-restart snapshot", "post-restart snapshot", "backup-end snapshot", "log-end snapshot"],
      );
      assert.equal(site.pve.guest(101)!.lock, undefined);
      assert.ok(!site.pve.lvs().some((lv) => lv.name.includes("vzdump")), "vzdump removed its snapshot");
    } finally {
      site.pve.setFaults({});
    }
  });

  it("LXC snapshot falling back to suspend: no snapshotted, the stack resumes only when the job ends", async () => {
    site.pve.setFaults({ snapshotPrepareFail: "some volumes do not support snapshots" });
    try {
      const { job, events } = await backup("101");
      assert.equal(phaseName(job.phase), "done", `${job.errorCode}: ${job.errorMessage}`);
      assert.deepEqual(phaseSequence(events), ["queued", "quiescing", "snapshotting", "archiving", "done"]);
      assert.equal(job.mode, SnapshotMode.SNAPSHOT_MODE_SUSPEND);
      const stack = job.stacks.find((s) => s.stack === "app")!;
      assert.equal(stack.resumedEarly, false);
      assert.ok(stack.resumedAt!.getTime() >= job.finishedAt!.getTime(), "resumed at the end");
      assert.ok(notes(events).some((n) => n.includes("vzdump backs up guest 101 in suspend mode (asked for snapshot)")), notes(events).join("\n"));
      assert.ok(existsSync(job.archivePath));
      assert.ok(await stackRunning(site.stack("app").dataDir));
    } finally {
      site.pve.setFaults({});
    }
  });

  it("LXC stop mode (per guest): no snapshotted, the stack resumes at the end", async () => {
    const { job, events } = await backup("102");
    assert.equal(phaseName(job.phase), "done", `${job.errorCode}: ${job.errorMessage}`);
    assert.deepEqual(phaseSequence(events), ["queued", "quiescing", "snapshotting", "archiving", "done"]);
    assert.equal(job.mode, SnapshotMode.SNAPSHOT_MODE_STOP);
    const stack = job.stacks.find((s) => s.stack === "mailer")!;
    assert.equal(stack.resumedEarly, false);
    assert.ok(stack.resumedAt!.getTime() >= job.finishedAt!.getTime());
    assert.equal(vzdumpArgv(102)[0]![2], "stop");
    const info = await site.agent.client().info();
    assert.deepEqual(
      info.guests.filter((g) => g.id === "101" || g.id === "102").map((g) => [g.id, g.engine, g.driver, g.snapshot]),
      [["101", "vzdump", "", "snapshot"], ["102", "vzdump", "", "stop"]],
    );
    assert.ok(await stackRunning(site.stack("mailer").dataDir));
  });

  it("QEMU snapshot mode: snapshotted right at `started backup task`, the stack resumes then", async () => {
    const { job, events } = await backup("100");
    assert.equal(phaseName(job.phase), "done", `${job.errorCode}: ${job.errorMessage}`);
    assert.deepEqual(phaseSequence(events), ["queued", "quiescing", "snapshotting", "snapshotted", "archiving", "done"]);
    const snapshotted = events.findIndex((e) => e.kind === EventKind.EVENT_KIND_PHASE && e.phase === Phase.PHASE_SNAPSHOTTED);
    const lastNoteBefore = events.slice(0, snapshotted).filter((e) => e.kind === EventKind.EVENT_KIND_NOTE).at(-1);
    assert.match(lastNoteBefore?.message ?? "", /^vzdump: INFO: started backup task '[0-9a-f-]+'$/);
    assert.match(job.archivePath, /\/vzdump-qemu-100-[0-9_-]+\.vma\.zst$/);
    const stack = job.stacks.find((s) => s.stack === "db")!;
    assert.equal(stack.resumedEarly, true);
    assert.ok(await stackRunning(site.stack("db").dataDir));
  });

  it("a refusal vetoes that guest's backup: vzdump logs the failed pre-stop hook, the job fails QUIESCE_REFUSED, the stack runs", async () => {
    const { job, events } = await backup("103");
    assert.equal(phaseName(job.phase), "failed");
    assert.equal(job.errorCode, "LULL_E_QUIESCE_REFUSED");
    assert.equal(job.failedIn, Phase.PHASE_QUIESCING);
    assert.deepEqual(phaseSequence(events), ["queued", "quiescing", "failed"]);
    assert.equal(job.stacks[0]?.state, StackState.STACK_STATE_REFUSED);
    // vzdump's own log of that guest: the hook printed the veto, vzdump failed the guest on it.
    // The job failed at the refusal; vzdump then fails the guest, cleans up and writes its log.
    const logName = await waitFor("vzdump's log of guest 103", () => site.dumpFiles().find((f) => f.startsWith("vzdump-lxc-103-") && f.endsWith(".log")), 20_000);
    const vzdumpLog = readFileSync(join(site.dumpDir, logName), "utf8");
    assert.match(vzdumpLog, /INFO: lull: backup vetoed: quiesce refused: picky \(refused: /);
    assert.ok(vzdumpLog.includes(`ERROR: Backup of VM 103 failed - command '${site.hookScriptPath} pre-stop snapshot 103' failed: exit code 1`), vzdumpLog);
    assert.ok(!site.dumpFiles().some((f) => f.startsWith("vzdump-lxc-103-") && !f.endsWith(".log")), `no archive of 103: ${site.dumpFiles().join(", ")}`);
    assert.equal(site.pve.guest(103)!.lock, undefined);
    assert.ok(await stackRunning(site.stack("picky").dataDir));
  });

  it("a stopped guest: nothing to quiesce (said so, crash-consistent as far as Lull knows), stop mode, done", async () => {
    const { job, events } = await backup("104");
    assert.equal(phaseName(job.phase), "done", `${job.errorCode}: ${job.errorMessage}`);
    assert.deepEqual(phaseSequence(events), ["queued", "snapshotting", "archiving", "done"]);
    assert.equal(job.mode, SnapshotMode.SNAPSHOT_MODE_STOP);
    assert.equal(job.consistency, Consistency.CONSISTENCY_CRASH);
    assert.ok(notes(events).includes("nothing quiesced: guest 104 is not running (vzdump stop mode, no pre-stop)"), notes(events).join("\n"));
    assert.deepEqual(job.stacks, []);
    assert.ok(existsSync(job.archivePath));
  });
});
