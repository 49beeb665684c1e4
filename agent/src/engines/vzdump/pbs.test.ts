// The vzdump engine to a Proxmox Backup Server storage, against the fake toolbox: the job ends with
// the PBS snapshot id as its location (a `pbs-snapshot` restore point), its size from the client's
// lines, LXC progress from vzdump's lines (nothing grows on this node), whether Lull's config names
// the storage or only /etc/vzdump.conf's `storage:` does.
import assert from "node:assert/strict";
import { afterEach, beforeEach, describe, it } from "node:test";
import { silentLogger, systemClock } from "@lull/shared";
import type { GuestConfig } from "../../config.js";
import { locationKindOf } from "../../backups/restore-point.js";
import { recordingHooks, startFakePveNode, type FakePveNode, type RecordingHooks } from "../../pve/testing/fake-pve.js";
import { createVzdumpEngine } from "./engine.js";

let node: FakePveNode;
const SNAPSHOT = /^(ct|vm)\/\d+\/\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/;

function run(id: string, hooks: RecordingHooks, storage: string | undefined) {
  const { storage: _ignored, ...vzdump } = node.config.vzdump;
  const pve = { ...node.config, vzdump: { ...vzdump, ...(storage !== undefined ? { storage } : {}), compress: "zstd" as const } };
  const engine = createVzdumpEngine({ pve, node: "pve1", runner: node.runner, launcher: node.launcher, hookServer: node.hookServer, hookScriptPath: node.hookScriptPath, clock: systemClock, log: silentLogger(), vzdumpEnv: node.env });
  return engine.run({ jobId: "j-0000000000000000000000pbs1", guest: { id, engine: "vzdump" } as unknown as GuestConfig, hooks, signal: new AbortController().signal, log: silentLogger() });
}

beforeEach(async () => {
  node = await startFakePveNode();
  node.pve.addPbsStorage("pbs1", { datastore: "tank" });
  node.pve.addContainer(101, { rootfs: { storage: "local-lvm", files: { "data/blob": Buffer.alloc(96 * 1024, 4) } } });
  node.pve.addVm(100, { disks: [{ key: "scsi0", storage: "local-lvm", bytes: Buffer.alloc(256 * 1024, 6) }] });
});
afterEach(async () => {
  await node.close();
});

describe("vzdump engine to a PBS storage", () => {
  it("a container named by Lull's config: done with the snapshot id ct/101/<time>, the client's size, progress from its lines", async () => {
    const hooks = recordingHooks();
    const result = await run("101", hooks, "pbs1");
    assert.match(result.archivePath, SNAPSHOT);
    assert.ok(result.archivePath.startsWith("ct/101/"), result.archivePath);
    assert.equal(locationKindOf("vzdump", result.archivePath), "pbs-snapshot");
    assert.ok(result.archiveBytes > 96 * 1024, `the pxar holds the blob: ${result.archiveBytes}`);
    assert.deepEqual(hooks.phases(), ["quiesce", "snapshotting:snapshot", "snapshotted:snapshot", "archiving:snapshot"]);
    const progress = hooks.calls.filter((c) => c.kind === "progress");
    assert.ok(progress.some((p) => p.kind === "progress" && p.done === result.archiveBytes), JSON.stringify(progress));
    assert.ok(hooks.notes().includes(`vzdump stored guest 101 on a Proxmox Backup Server as snapshot ${result.archivePath}`), hooks.notes().join("\n"));
    assert.deepEqual(node.pve.calls("vzdump")[0]!.args.slice(5, 7), ["--storage", "pbs1"]);
  });

  it("a VM whose PBS storage only /etc/vzdump.conf names: done with vm/100/<time> and the disk's size", async () => {
    node.pve.writeVzdumpConf({ storage: "pbs1" });
    const hooks = recordingHooks();
    const result = await run("100", hooks, undefined);
    assert.ok(result.archivePath.startsWith("vm/100/") && SNAPSHOT.test(result.archivePath), result.archivePath);
    assert.equal(result.archiveBytes, 256 * 1024);
    assert.deepEqual(hooks.phases(), ["quiesce", "snapshotting:snapshot", "snapshotted:snapshot", "archiving:snapshot"]);
    assert.ok(!node.pve.calls("vzdump")[0]!.args.includes("--storage"));
  });
});
