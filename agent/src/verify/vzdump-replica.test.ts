// The verifier on vzdump points against the fake toolbox, in process: a failing check, a timeout
// and a cancel each end with the scratch guest destroyed (no guest, no volume, no replica
// directory); the sweep leaves alone a guest that took a recorded vmid without the replica's
// marker; a PBS snapshot is restored from its storage.
import assert from "node:assert/strict";
import { existsSync, mkdirSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { Consistency, SnapshotMode } from "@lull/proto";
import { createExecaLauncher, silentLogger, systemClock, type Launcher } from "@lull/shared";
import { EventBus } from "../events/bus.js";
import { JobLedger } from "../jobs/ledger.js";
import { JobStore } from "../jobs/store.js";
import { restoreGuest } from "../pve/guest-restore.js";
import { startFakePveNode, type FakePveNode } from "../pve/testing/fake-pve.js";
import { verifyConfigSchema } from "./config.js";
import { sweepReplicas } from "./replica.js";
import { replicaRestorer } from "./restore.js";
import { VerifyStore } from "./store.js";
import { Verifier } from "./verifier.js";
import { vzdumpReplicaRestorer } from "./vzdump-replica.js";

describe("verification of vzdump points on scratch guests (fake toolbox)", () => {
  let node: FakePveNode;
  let launcher: Launcher;
  let jobs: JobLedger;
  let store: JobStore;
  let archive: string;
  let n = 0;

  before(async () => {
    node = await startFakePveNode();
    launcher = { launch: (f, a, o) => createExecaLauncher().launch(f, a, { ...o, env: { ...node.env, ...(o.env ?? {}) } }) };
    node.pve.addContainer(101, { hostname: "shop", status: "stopped", rootfs: { storage: "local-lvm", files: { "srv/orders.txt": "42\n" } }, config: { net0: "name=eth0,bridge=vmbr0,hwaddr=BC:24:11:00:00:01,type=veth" } });
    await node.runner.run("vzdump", ["101", "--storage", "local", "--compress", "zstd", "--mode", "stop"]);
    archive = join(node.dumpDir, readdirSync(node.dumpDir).find((f) => f.endsWith(".tar.zst"))!);
    store = JobStore.open(join(node.dir, "agent.db"));
    jobs = new JobLedger({ store, bus: new EventBus(silentLogger()), log: silentLogger(), clock: systemClock });
  });
  after(async () => {
    store?.close();
    await node?.close();
  });

  function verifier(argv: string[], timeoutMs = 60_000) {
    const config = verifyConfigSchema.parse({ checks: [{ guest: "101", stack: "app", check: { type: "command", argv } }], ports: { from: 55400, to: 55420 }, timeoutMs });
    return new Verifier({
      config, prefix: "lull-", scratchDir: join(node.dir, "scratch"), store: new VerifyStore(store.database), backups: jobs.backups, ledger: jobs.ledger,
      runner: node.runner, launcher,
      restore: replicaRestorer({ extractNative: () => Promise.reject(new Error("not native")), restoreGuest: vzdumpReplicaRestorer({ runner: node.runner, launcher }) }),
      log: silentLogger(), clock: systemClock,
    });
  }

  function point(): string {
    const id = `b-vz${++n}`;
    jobs.ledger.commit(() =>
      jobs.backups.insert({
        id, jobId: `j-vz${n}`, guestId: "101", groupRunId: "", engine: "vzdump", mode: SnapshotMode.SNAPSHOT_MODE_STOP, consistency: Consistency.CONSISTENCY_APP,
        snapshotAt: undefined, createdAt: new Date(Date.now() + n), locationKind: "vzdump-archive", location: archive, sizeBytes: 1, stacks: [], protected: false, notes: "",
        origin: "lull", sha256: "", manifest: undefined, integrity: undefined,
      }),
    );
    return id;
  }

  const nothingLeft = () => {
    assert.deepEqual([100, 102, 103].filter((id) => node.pve.guest(id) !== undefined), [], "no scratch guest");
    assert.deepEqual(node.pve.lvs().filter((lv) => /^vm-10[023]-/.test(lv.name)).map((lv) => lv.name), [], "no scratch volume");
    assert.deepEqual(existsSync(join(node.dir, "scratch")) ? readdirSync(join(node.dir, "scratch")) : [], [], "no replica directory");
  };

  it("a failing check, a timeout and a cancel each destroy the scratch guest", async () => {
    const failed = await verifier(["sh", "-c", 'test -f "$LULL_REPLICA_ROOT/rootfs/srv/missing.txt" || { echo "missing.txt not restored" >&2; exit 4; }']).verify(point());
    assert.equal(failed.phase, "failed");
    assert.match(failed.reason, /exited 4: missing.txt not restored/);
    nothingLeft();

    const slow = verifier(["sleep", "30"], 3_000);
    const timedOut = await slow.verify(point());
    assert.equal(timedOut.phase, "failed");
    assert.match(timedOut.reason, /longer than verify.timeoutMs \(3000 ms\)/);
    nothingLeft();

    const v = verifier(["sleep", "30"]);
    const id = point();
    const running = v.verify(id);
    const scratch = join(node.dir, "scratch");
    for (let i = 0; i < 200 && !(node.pve.guest(100)?.lock === "mounted"); i++) await new Promise((r) => setTimeout(r, 50));
    assert.equal(node.pve.guest(100)?.lock, "mounted", "the check runs on the mounted scratch guest");
    assert.equal(v.cancel(new VerifyStore(store.database).ofPoint(id)[0]!.id), true);
    assert.equal((await running).phase, "cancelled");
    nothingLeft();
    assert.equal(existsSync(scratch) ? readdirSync(scratch).length : 0, 0);
  });

  it("the sweep leaves alone a guest that took the recorded vmid without the replica's marker", async () => {
    const dir = join(node.dir, "scratch", "lull-verify-v-stale");
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, "replica.json"), JSON.stringify({ runId: "v-stale", pointId: "b-x", guestId: "101", port: 1, vmid: 150, vmType: "lxc", createdAt: 0 }));
    node.pve.addContainer(150, { hostname: "someone-else", status: "stopped" });
    const [report] = await sweepReplicas(join(node.dir, "scratch"), "lull-", { runner: node.runner });
    assert.equal(report!.notOursVmid, 150);
    assert.equal(report!.destroyedVmid, undefined);
    assert.ok(node.pve.guest(150), "someone else's guest stays");
    assert.equal(existsSync(dir), false);
  });

  it("restores a PBS snapshot from its storage", async () => {
    node.pve.addPbsStorage("pbs1");
    const r = await node.runner.run("vzdump", ["101", "--storage", "pbs1", "--mode", "stop"]);
    const snapshot = /creating Proxmox Backup Server archive '([^']+)'/.exec(r.stdout + r.stderr)![1]!;
    const done = await restoreGuest({ runner: node.runner, launcher }, { point: { id: "b-pbs", locationKind: "pbs-snapshot", location: snapshot }, pbsStorage: "pbs1", vmid: 160, force: false, start: false, signal: new AbortController().signal });
    assert.equal(done.archive, `pbs1:backup/${snapshot}`);
    assert.equal(node.pve.guest(160)!.keys.hostname, "shop");
  });
});
