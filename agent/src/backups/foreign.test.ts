// Foreign points against the fake toolbox: vzdump archives made without Lull in the guest's
// storage become `foreign` points (listed through pvesh's content listing), an archive a Lull job
// made is not listed twice, a rescan adds nothing, an archive deleted outside Lull is marked
// removed, and retention keeps foreign points unless `prune.includeForeign`.
import assert from "node:assert/strict";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { Consistency, SnapshotMode } from "@lull/proto";
import { silentLogger, systemClock } from "@lull/shared";
import { EventBus } from "../events/bus.js";
import { JobLedger } from "../jobs/ledger.js";
import { JobStore } from "../jobs/store.js";
import { pruneConfigSchema } from "../prune/config.js";
import { PointPruner } from "../prune/prune.js";
import { startFakePveNode, type FakePveNode } from "../pve/testing/fake-pve.js";
import { VerifyStore } from "../verify/store.js";
import { foreignPointId, scanForeignPoints } from "./foreign.js";

describe("foreign restore points (fake toolbox)", () => {
  let node: FakePveNode;
  let jobs: JobLedger;
  let store: JobStore;
  before(async () => {
    node = await startFakePveNode();
    node.pve.addContainer(101, { hostname: "web", status: "stopped", rootfs: { storage: "local-lvm", files: { "srv/a": "a" } } });
    store = JobStore.open(join(node.dir, "agent.db"));
    jobs = new JobLedger({ store, bus: new EventBus(silentLogger()), log: silentLogger(), clock: systemClock });
  });
  after(async () => {
    store?.close();
    await node?.close();
  });

  const archives = () => readdirSync(node.dumpDir).filter((f) => /^vzdump-lxc-101-.*\.tar\.zst$/.test(f)).sort();
  const deps = () => ({ runner: node.runner, node: "pve1", backups: jobs.backups, ledger: jobs.ledger });

  it("lists archives made without Lull as foreign points, never one Lull made, and finds them again on a rescan", async () => {
    // One archive "Lull made" (its point names the path), then one from the GUI with notes, a second later.
    await node.runner.run("vzdump", ["101", "--storage", "local", "--compress", "zstd", "--mode", "stop"]);
    const mine = archives()[0]!;
    jobs.ledger.commit(() =>
      jobs.backups.insert({
        id: "b-own", jobId: "j-own", guestId: "101", groupRunId: "", engine: "vzdump", mode: SnapshotMode.SNAPSHOT_MODE_STOP, consistency: Consistency.CONSISTENCY_APP,
        snapshotAt: undefined, createdAt: new Date(), locationKind: "vzdump-archive", location: join(node.dumpDir, mine), sizeBytes: 1, stacks: [], protected: false, notes: "",
        origin: "lull", sha256: "", manifest: undefined, integrity: undefined,
      }),
    );
    await new Promise((r) => setTimeout(r, 1100));
    await node.runner.run("vzdump", ["101", "--storage", "local", "--compress", "zstd", "--mode", "stop", "--notes-template", "made in the GUI", "--protected", "1"]);
    const gui = archives().find((f) => f !== mine)!;

    const r = await scanForeignPoints(deps(), [{ id: "101", storage: "local" }]);
    const volid = `local:backup/${gui}`;
    assert.deepEqual(r, { added: [foreignPointId(volid)], removed: [] });
    const p = jobs.backups.get(foreignPointId(volid))!;
    assert.equal(p.origin, "foreign");
    assert.equal(p.location, volid);
    assert.equal(p.locationKind, "vzdump-archive");
    assert.equal(p.notes, "made in the GUI");
    assert.equal(p.protected, true);
    assert.ok(p.sizeBytes > 0);
    assert.equal(jobs.backups.list({ guestId: "101", limit: 10 }).length, 2, "Lull's own archive is not listed twice");
    const call = node.runner.calls.filter((c) => c.file === "pvesh").at(-1)!;
    assert.deepEqual(call.args, ["get", "/nodes/pve1/storage/local/content", "--content", "backup", "--vmid", "101", "--output-format", "json"]);
    assert.deepEqual(await scanForeignPoints(deps(), [{ id: "101", storage: "local" }]), { added: [], removed: [] });
  });

  it("an archive scanned before the Lull run that wrote it ended is retired once its point exists", async () => {
    await new Promise((r) => setTimeout(r, 1100));
    await node.runner.run("vzdump", ["101", "--storage", "local", "--compress", "zstd", "--mode", "stop"]);
    const file = archives().at(-1)!;
    const early = await scanForeignPoints(deps(), [{ id: "101", storage: "local" }]);
    assert.deepEqual(early.added, [foreignPointId(`local:backup/${file}`)]);
    jobs.ledger.commit(() =>
      jobs.backups.insert({
        id: "b-late", jobId: "j-late", guestId: "101", groupRunId: "", engine: "vzdump", mode: SnapshotMode.SNAPSHOT_MODE_STOP, consistency: Consistency.CONSISTENCY_APP,
        snapshotAt: undefined, createdAt: new Date(), locationKind: "vzdump-archive", location: join(node.dumpDir, file), sizeBytes: 1, stacks: [], protected: false, notes: "",
        origin: "lull", sha256: "", manifest: undefined, integrity: undefined,
      }),
    );
    assert.deepEqual(await scanForeignPoints(deps(), [{ id: "101", storage: "local" }]), { added: [], removed: [foreignPointId(`local:backup/${file}`)] });
    assert.equal(jobs.backups.list({ guestId: "101", limit: 10 }).filter((p) => p.location.endsWith(file)).length, 1);
  });

  it("retention keeps foreign points unless prune.includeForeign; one deleted outside Lull is marked removed", async () => {
    const pruner = (includeForeign: boolean) =>
      new PointPruner({
        config: pruneConfigSchema.parse({ keep: { keepLast: 1 }, includeForeign }),
        node: "pve1", archiveDir: node.dir, backups: jobs.backups, jobs: store, verify: new VerifyStore(store.database), ledger: jobs.ledger, runner: node.runner, log: silentLogger(),
      });
    const foreign = jobs.backups.list({ guestId: "101", limit: 10 }).find((p) => p.origin === "foreign")!;
    const kept = pruner(false).plan("101").decisions.find((d) => d.id === foreign.id)!;
    assert.deepEqual([kept.action, kept.reasons], ["keep", ["made without Lull: not pruned by Lull"]]);
    const counted = pruner(true).plan("101").decisions.find((d) => d.id === foreign.id)!;
    assert.notDeepEqual(counted.reasons, ["made without Lull: not pruned by Lull"], "with includeForeign it is decided like Lull's own");

    await node.runner.run("rm", [join(node.dumpDir, `${foreign.location.split("/").at(-1)}.protected`)]);
    await node.runner.run("pvesh", ["delete", `/nodes/pve1/storage/local/content/${foreign.location}`]);
    assert.deepEqual(await scanForeignPoints(deps(), [{ id: "101", storage: "local" }]), { added: [], removed: [foreign.id] });
    assert.equal(jobs.backups.list({ guestId: "101", limit: 10 }).some((p) => p.id === foreign.id), false);
  });

  it("a storage that does not exist is a clear error", async () => {
    await assert.rejects(scanForeignPoints(deps(), [{ id: "101", storage: "nosuch" }]), /storage 'nosuch' does not exist \(is the storage 'nosuch' of guest 101 right\?\)/);
  });
});
