// The fake vzdump to a Proxmox Backup Server storage (VZDump::storage_info → pbs, exec_backup_task):
// TARGET is the PBS snapshot `ct|vm/<vmid>/<ISO 8601 Z>`, no DUMPDIR, no LOGFILE, no archive in a
// dump dir and no .dat, the log says `creating Proxmox Backup Server archive '…'`, and the storage
// may come from /etc/vzdump.conf's `storage:` alone.
import assert from "node:assert/strict";
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { afterEach, beforeEach, describe, it } from "node:test";
import { assertInOrder, createFakeNode, runTool, writeRecordingHook, type FakeNode } from "./fake-node.js";

let node: FakeNode;
const SNAPSHOT = /^(ct|vm)\/\d+\/\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/;

beforeEach(async () => {
  node = await createFakeNode();
  node.pve.addPbsStorage("pbs1", { datastore: "tank" });
  node.pve.addContainer(101, { rootfs: { storage: "local-lvm", files: { "data/blob": Buffer.alloc(64 * 1024, 4) } } });
  node.pve.addVm(100, { disks: [{ key: "scsi0", storage: "local-lvm", bytes: Buffer.alloc(128 * 1024, 6) }] });
});
afterEach(async () => {
  await node.cleanup();
});

describe("fake vzdump to a PBS storage", () => {
  it("a container: TARGET ct/101/<time>, no DUMPDIR/LOGFILE, the PBS archive line and the client's lines, nothing in the dump dir", async () => {
    const hook = await writeRecordingHook(node.dir);
    const r = await runTool(node.pve, "vzdump", ["101", "--storage", "pbs1", "--script", hook.path]);
    assert.equal(r.exitCode, 0, r.stdout + r.stderr);
    const calls = await hook.calls();
    const end = calls.find((c) => c.args[0] === "backup-end")!;
    assert.match(end.env.TARGET!, SNAPSHOT);
    assert.ok(end.env.TARGET!.startsWith("ct/101/"));
    assert.equal(end.env.STOREID, "pbs1");
    for (const c of calls) {
      assert.equal(c.env.DUMPDIR, undefined, c.args.join(" "));
      assert.equal(c.env.LOGFILE, undefined, c.args.join(" "));
    }
    assertInOrder(r.lines, [
      `INFO: creating Proxmox Backup Server archive '${end.env.TARGET}'`,
      `INFO: Starting backup: ${end.env.TARGET}`,
      "INFO: Upload directory '",
      "INFO: root.pxar: had to backup ",
      "INFO: Duration: ",
      "INFO: Finished Backup of VM 101",
    ]);
    assert.ok(!r.lines.some((l) => l.startsWith("INFO: archive file size")), r.stdout);
    assert.deepEqual(readdirSync(node.dumpDir), []);
    assert.ok(existsSync(join(node.pve.root, "pbs", "pbs1", ...end.env.TARGET!.split("/"), "root.pxar")));
  });

  it("a VM: TARGET vm/100/<time>, progress lines as with a file target", async () => {
    const hook = await writeRecordingHook(node.dir);
    const r = await runTool(node.pve, "vzdump", ["100", "--storage", "pbs1", "--script", hook.path]);
    assert.equal(r.exitCode, 0, r.stdout + r.stderr);
    const end = (await hook.calls()).find((c) => c.args[0] === "backup-end")!;
    assert.ok(end.env.TARGET!.startsWith("vm/100/") && SNAPSHOT.test(end.env.TARGET!), end.env.TARGET);
    assertInOrder(r.lines, [`INFO: creating Proxmox Backup Server archive '${end.env.TARGET}'`, "INFO: started backup task", "INFO: 100% (128.0 KiB of 128.0 KiB)"]);
  });

  it("/etc/vzdump.conf's `storage:` names the PBS storage when the command line names none; --storage overrides it", async () => {
    node.pve.writeVzdumpConf({ storage: "pbs1" });
    const viaConf = await runTool(node.pve, "vzdump", ["101"]);
    assert.equal(viaConf.exitCode, 0, viaConf.stdout);
    assert.ok(viaConf.lines.some((l) => /^INFO: creating Proxmox Backup Server archive 'ct\/101\//.test(l)), viaConf.stdout);
    const viaCli = await runTool(node.pve, "vzdump", ["101", "--storage", "local"]);
    assert.ok(viaCli.lines.some((l) => l.startsWith("INFO: creating vzdump archive '")), viaCli.stdout);
  });
});
