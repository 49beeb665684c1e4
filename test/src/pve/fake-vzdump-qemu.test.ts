// The fake vzdump on VMs: hook order per mode (all hooks before the freeze in snapshot mode),
// the guest-agent freeze lines in both wordings, `started backup task`, progress lines, the
// .vma archive, excluded disks, and stopped VMs.
import assert from "node:assert/strict";
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { afterEach, beforeEach, describe, it } from "node:test";
import { assertInOrder, createFakeNode, runTool, writeRecordingHook, type FakeNode } from "./fake-node.js";

let node: FakeNode;

function seedVm(options: { status?: "running" | "stopped"; agent?: boolean; agentRunning?: boolean } = {}): void {
  node.pve.addVm(100, {
    name: "db",
    status: options.status ?? "running",
    agent: options.agent ?? true,
    agentRunning: options.agentRunning ?? true,
    disks: [
      { key: "scsi0", storage: "local-lvm", bytes: Buffer.alloc(300 * 1024, 7) },
      { key: "scsi1", storage: "local-zfs", backup: false },
      { key: "ide2", cdrom: true },
    ],
  });
}

beforeEach(async () => {
  node = await createFakeNode();
});
afterEach(async () => {
  await node.cleanup();
});

describe("fake vzdump, VM in snapshot mode", () => {
  it("fires every hook before the freeze, then logs freeze, QMP backup, thaw, started backup task and progress", async () => {
    seedVm();
    const hook = await writeRecordingHook(node.dir, { print: "HOOK:" });
    const r = await runTool(node.pve, "vzdump", ["100", "--mode", "snapshot", "--script", hook.path, "--storage", "local", "--compress", "gzip"]);
    assert.equal(r.exitCode, 0, r.stdout + r.stderr);
    assert.deepEqual((await hook.phases()).filter((p) => p.endsWith(" 100")), [
      "backup-start snapshot 100",
      "pre-stop snapshot 100",
      "pre-restart snapshot 100",
      "post-restart snapshot 100",
      "backup-end snapshot 100",
      "log-end snapshot 100",
    ]);
    assertInOrder(r.lines, [
      "INFO: Starting Backup of VM 100 (qemu)",
      "INFO: status = running",
      "INFO: VM Name: db",
      "INFO: include disk 'scsi0' 'local-lvm:vm-100-disk-0' 32G",
      "INFO: exclude disk 'scsi1' 'local-zfs:vm-100-disk-1' (backup=no)",
      "INFO: backup mode: snapshot",
      "INFO: HOOK: pre-stop snapshot 100",
      "INFO: HOOK: post-restart snapshot 100",
      "INFO: creating vzdump archive '",
      "INFO: issuing guest-agent 'fs-freeze' command",
      "INFO: starting backup via QMP command",
      "INFO: issuing guest-agent 'fs-thaw' command",
      "INFO: started backup task '",
      "INFO: resuming VM again",
      "INFO: 100% (300.0 KiB of 300.0 KiB) in ",
      "INFO: backup is sparse: ",
      "INFO: transferred ",
      "INFO: archive file size: ",
      "INFO: HOOK: backup-end snapshot 100",
      "INFO: Finished Backup of VM 100",
      "INFO: Backup job finished successfully",
    ]);
    assert.ok(!r.stdout.includes("ide2"), "a cdrom is not a disk");
    const progress = r.lines.filter((l) => /^INFO: +\d+% \(/.test(l));
    assert.ok(progress.length >= 2, r.stdout);
    assert.match(progress[0]!, /^INFO: {1,3}\d{1,3}% \([\d.]+ (B|KiB|MiB) of 300\.0 KiB\) in \d+s, read: [\d.]+ \S+\/s, write: [\d.]+ \S+\/s$/);
    assert.match(r.lines.find((l) => l.startsWith("INFO: started backup task"))!, /^INFO: started backup task '[0-9a-f-]{36}'$/);
    const archives = readdirSync(node.dumpDir).filter((f) => /^vzdump-qemu-100-.*\.vma\.gz$/.test(f));
    assert.equal(archives.length, 1);
    assert.ok(statSync(join(node.dumpDir, archives[0]!)).size > 0);
    assert.equal(node.pve.guest(100)!.runtime?.fsFrozen, false);
    assert.equal(node.pve.guest(100)!.lock, undefined);
  });

  it("skips the freeze with the new wording when the agent does not answer, and the old one on older versions", async () => {
    seedVm({ agentRunning: false });
    const r = await runTool(node.pve, "vzdump", ["100", "--storage", "local"]);
    assert.equal(r.exitCode, 0, r.stdout);
    assert.ok(r.lines.includes("INFO: skipping guest filesystem freeze - agent configured but not running?"), r.stdout);
    assert.ok(!r.stdout.includes("fs-thaw"));
    node.pve.setOptions({ progressIntervalMs: 0, qgaWording: "old" });
    const old = await runTool(node.pve, "vzdump", ["100", "--storage", "local"]);
    assert.ok(old.lines.includes("INFO: skipping guest-agent 'fs-freeze', agent configured but not running?"), old.stdout);
  });

  it("a failed freeze is an ERROR line but the backup goes on and thaw is still sent", async () => {
    seedVm();
    node.pve.setFaults({ qgaFreezeFail: true });
    const r = await runTool(node.pve, "vzdump", ["100", "--storage", "local"]);
    assert.equal(r.exitCode, 0, r.stdout);
    assertInOrder(r.lines, [
      "INFO: issuing guest-agent 'fs-freeze' command",
      "ERROR: VM 100 qmp command 'guest-fsfreeze-freeze' failed - got timeout",
      "INFO: issuing guest-agent 'fs-thaw' command",
      "INFO: started backup task",
    ]);
  });
});

describe("fake vzdump, VM in suspend and stop mode", () => {
  it("suspend: pre-stop, suspend, archive (resumed at job start), backup-end, pre-restart, post-restart", async () => {
    seedVm();
    const hook = await writeRecordingHook(node.dir);
    const r = await runTool(node.pve, "vzdump", ["100", "--mode", "suspend", "--script", hook.path, "--storage", "local"]);
    assert.equal(r.exitCode, 0, r.stdout);
    assert.deepEqual((await hook.phases()).filter((p) => p.endsWith(" 100")), [
      "backup-start suspend 100",
      "pre-stop suspend 100",
      "backup-end suspend 100",
      "pre-restart suspend 100",
      "post-restart suspend 100",
      "log-end suspend 100",
    ]);
    assertInOrder(r.lines, [
      "INFO: backup mode: suspend",
      "INFO: suspending guest",
      "INFO: creating vzdump archive",
      "INFO: skipping guest filesystem freeze - agent configured but not running?",
      "INFO: started backup task",
      "INFO: resuming VM again after ",
      "INFO: resume vm",
    ]);
    // resume_vm_after_job_start clears vmstoptime ("avoid printing 'online after ..' twice").
    assert.ok(!r.stdout.includes("guest is online again"), r.stdout);
    assert.equal(node.pve.guest(100)!.runtime?.status, "running");
  });

  it("stop: shutdown, kvm started paused for the job, resumed at job start, pre-restart after backup-end", async () => {
    seedVm();
    const hook = await writeRecordingHook(node.dir);
    const r = await runTool(node.pve, "vzdump", ["100", "--mode", "stop", "--script", hook.path, "--storage", "local"]);
    assert.equal(r.exitCode, 0, r.stdout);
    assert.deepEqual((await hook.phases()).filter((p) => p.endsWith(" 100")), [
      "backup-start stop 100",
      "pre-stop stop 100",
      "backup-end stop 100",
      "pre-restart stop 100",
      "post-restart stop 100",
      "log-end stop 100",
    ]);
    assertInOrder(r.lines, [
      "INFO: stopping virtual guest",
      "INFO: creating vzdump archive",
      "INFO: starting kvm to execute backup task",
      "INFO: started backup task",
      "INFO: resuming VM again after ",
    ]);
    assert.ok(!r.stdout.includes("guest is online again"), r.stdout);
    assert.ok(!r.stdout.includes("restarting vm"), "the VM already runs again since job start");
    assert.equal(node.pve.guest(100)!.runtime?.status, "running");
  });

  it("a stopped VM is started paused for the job and stopped again; hooks backup-start, backup-end, log-end", async () => {
    seedVm({ status: "stopped" });
    const hook = await writeRecordingHook(node.dir);
    const r = await runTool(node.pve, "vzdump", ["100", "--script", hook.path, "--storage", "local"]);
    assert.equal(r.exitCode, 0, r.stdout);
    assert.deepEqual((await hook.phases()).filter((p) => p.endsWith(" 100")), ["backup-start stop 100", "backup-end stop 100", "log-end stop 100"]);
    assertInOrder(r.lines, ["INFO: backup mode: stop", "INFO: creating vzdump archive", "INFO: starting kvm to execute backup task", "INFO: started backup task", "INFO: stopping kvm after backup task"]);
    assert.ok(!r.stdout.includes("resuming VM again"));
    assert.equal(node.pve.guest(100)!.runtime?.status, "stopped");
  });
});
