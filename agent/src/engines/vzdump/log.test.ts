import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { LullError } from "@lull/shared";
import { parseVmid, vzdumpArgs } from "./engine.js";
import { defaultPveConfig } from "../../pve/config.js";
import { classifyLine, parseRenderedBytes, partialArchivePath } from "./log.js";

describe("vzdump output lines", () => {
  it("reads the lines that matter, as real vzdump prints them", () => {
    assert.deepEqual(classifyLine("INFO:  12% (4.0 GiB of 32.0 GiB) in 9s, read: 673.6 MiB/s, write: 200.4 MiB/s"), {
      kind: "progress",
      percent: 12,
      doneBytes: 4 * 1024 ** 3,
      totalBytes: 32 * 1024 ** 3,
    });
    assert.deepEqual(classifyLine("INFO: 100% (32.0 GiB of 32.0 GiB) in 1m 35s, read: 345.0 MiB/s, write: 0 B/s").kind, "progress");
    assert.deepEqual(classifyLine("INFO: started backup task 'a1b2c3d4-0000-4000-8000-123456789abc'"), { kind: "job-started", uuid: "a1b2c3d4-0000-4000-8000-123456789abc" });
    assert.deepEqual(classifyLine("INFO: creating vzdump archive '/var/lib/vz/dump/vzdump-lxc-101-2024_10_18-18_30_08.tar.zst'"), {
      kind: "archive",
      path: "/var/lib/vz/dump/vzdump-lxc-101-2024_10_18-18_30_08.tar.zst",
    });
    assert.equal(classifyLine("INFO: create storage snapshot 'vzdump'").kind, "storage-snapshot");
    assert.deepEqual(classifyLine("INFO: backup mode: suspend"), { kind: "mode", mode: "suspend" });
    assert.equal(classifyLine("INFO: skipping guest filesystem freeze - agent configured but not running?").kind, "freeze-skipped");
    assert.equal(classifyLine("INFO: skipping guest-agent 'fs-freeze', agent configured but not running?").kind, "freeze-skipped");
    assert.deepEqual(classifyLine("ERROR: Backup of VM 101 failed - CT is locked (backup)"), { kind: "guest-failed", vmid: 101, message: "CT is locked (backup)" });
    assert.deepEqual(classifyLine("ERROR: Backup job failed - can't acquire lock '/var/run/vzdump.lock' - got timeout"), {
      kind: "job-failed",
      message: "can't acquire lock '/var/run/vzdump.lock' - got timeout",
    });
    assert.equal(classifyLine("ERROR: VM 100 qmp command 'guest-fsfreeze-freeze' failed - got timeout").kind, "freeze-failed");
    // current qemu-server (Agent::guest_fs_freeze_applicable, Agent::guest_fs_freeze)
    assert.deepEqual(classifyLine("INFO: skipping guest filesystem freeze - disabled in VM options"), { kind: "freeze-skipped", reason: "disabled in VM options" });
    assert.deepEqual(classifyLine("INFO: skipping guest filesystem freeze - already frozen"), { kind: "freeze-skipped", reason: "already frozen" });
    assert.deepEqual(classifyLine("ERROR: unable to freeze guest fs - unexpected status 'thawed'"), { kind: "freeze-failed", message: "unable to freeze guest fs - unexpected status 'thawed'" });
    assert.deepEqual(classifyLine("ERROR: querying status after freezing guest fs failed - timeout after 60 minutes"), {
      kind: "freeze-failed",
      message: "querying status after freezing guest fs failed - timeout after 60 minutes",
    });
    // a PBS target (VZDump::exec_backup_task, proxmox-backup-client's BackupWriter::upload_stream)
    assert.deepEqual(classifyLine("INFO: creating Proxmox Backup Server archive 'ct/101/2026-12-02T10:00:00Z'"), { kind: "pbs-archive", snapshot: "ct/101/2026-12-02T10:00:00Z" });
    assert.deepEqual(classifyLine("INFO: root.pxar: had to backup 1.205 GiB of 3.5 GiB (compressed 400.0 MiB) in 70.25s"), {
      kind: "pbs-uploaded",
      archive: "root.pxar",
      bytes: Math.round(3.5 * 1024 ** 3),
    });
    assert.equal(classifyLine('  Logical volume "snap_vm-101-disk-0_vzdump" created.').kind, "other");
    assert.equal(classifyLine("snapshot create failed: starting cleanup").kind, "snapshot-create-failed");
  });

  it("converts rendered sizes and finds the partial archive of a final name", () => {
    assert.equal(parseRenderedBytes("673.6", "MiB"), Math.round(673.6 * 1024 * 1024));
    assert.equal(parseRenderedBytes("1", "XB"), undefined);
    assert.equal(partialArchivePath("/d/vzdump-lxc-101-2024_10_18-18_30_08.tar.zst"), "/d/vzdump-lxc-101-2024_10_18-18_30_08.tar.dat");
    // Uncompressed: vzdump replaces the last extension (s/\.[^\.]+$/\.dat/), so `.tar`/`.vma` itself goes.
    assert.equal(partialArchivePath("/d/vzdump-qemu-100-2024_10_18-18_30_08.vma"), "/d/vzdump-qemu-100-2024_10_18-18_30_08.dat");
    assert.equal(partialArchivePath("/d/vzdump-lxc-101-2024_10_18-18_30_08.tar"), "/d/vzdump-lxc-101-2024_10_18-18_30_08.dat");
    assert.equal(partialArchivePath("/d/other.tar"), undefined);
  });
});

describe("vzdump argv", () => {
  it("is `vzdump <vmid> --mode snapshot --script <hook>` plus the configured target and options", () => {
    const pve = defaultPveConfig({ vzdump: { storage: "backup-nfs", bwlimitKiB: 50_000 } });
    assert.deepEqual(vzdumpArgs(101, pve.vzdump, "/var/lib/lull/vzdump-hook.mjs"), [
      "101", "--mode", "snapshot", "--script", "/var/lib/lull/vzdump-hook.mjs", "--storage", "backup-nfs", "--compress", "zstd", "--lockwait", "180", "--bwlimit", "50000",
    ]);
    assert.deepEqual(vzdumpArgs(100, defaultPveConfig({ vzdump: { dumpdir: "/srv/dumps", compress: "0", mode: "stop", lockwaitMinutes: 0 } }).vzdump, "/h.mjs"), [
      "100", "--mode", "stop", "--script", "/h.mjs", "--dumpdir", "/srv/dumps", "--compress", "0", "--lockwait", "0",
    ]);
    assert.throws(() => defaultPveConfig({ vzdump: { storage: "local", dumpdir: "/x" } }), /storage and dumpdir are exclusive/);
  });

  it("takes only Proxmox vmids as guest ids", () => {
    assert.equal(parseVmid("101"), 101);
    assert.throws(() => parseVmid("web01"), (e: unknown) => e instanceof LullError && e.code === "LULL_E_CONFIG_INVALID");
    assert.throws(() => parseVmid("99"), /needs a Proxmox vmid/);
  });
});
