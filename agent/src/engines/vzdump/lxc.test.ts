// The vzdump engine on containers, against the fake Proxmox toolbox, the real hook server and the
// real hook: what EngineHooks sees per mode (snapshotted only in snapshot mode) and per outcome.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { afterEach, beforeEach, describe, it } from "node:test";
import { LullError, silentLogger, systemClock } from "@lull/shared";
import type { GuestConfig } from "../../config.js";
import { recordingHooks, startFakePveNode, type FakePveNode, type RecordingHooks } from "../../pve/testing/fake-pve.js";
import { createVzdumpEngine } from "./engine.js";

let node: FakePveNode;
const JOB = "j-0000000000000000000000lxc1";
const guest = { id: "101", engine: "vzdump" } as unknown as GuestConfig;

function engine(mode: "snapshot" | "suspend" | "stop" = "snapshot", compress: "0" | "zstd" = "zstd") {
  const pve = { ...node.config, vzdump: { ...node.config.vzdump, mode, compress } };
  return createVzdumpEngine({ pve, node: "pve1", runner: node.runner, launcher: node.launcher, hookServer: node.hookServer, hookScriptPath: node.hookScriptPath, clock: systemClock, log: silentLogger(), vzdumpEnv: node.env });
}

function run(hooks: RecordingHooks, mode?: "snapshot" | "suspend" | "stop", compress?: "0" | "zstd", signal = new AbortController().signal) {
  return engine(mode, compress).run({ jobId: JOB, guest, hooks, signal, log: silentLogger() });
}

function seedCt(status: "running" | "stopped" = "running"): void {
  node.pve.addContainer(101, {
    hostname: "web01",
    status,
    rootfs: { storage: "local-lvm", files: { "etc/hostname": "web01\n", "data/blob": Buffer.alloc(64 * 1024, 3) } },
    mps: [{ storage: "local-zfs", mp: "/srv/data", backup: true, files: { "rows.txt": "1\n2\n" } }],
  });
}

beforeEach(async () => {
  node = await startFakePveNode();
});
afterEach(async () => {
  await node.close();
});

describe("vzdump engine, container", () => {
  it("snapshot mode: quiesce at pre-stop, snapshotted at pre-restart while vzdump's snapshot exists, then the archive", async () => {
    seedCt();
    let snapshotLvAtSnapshotted = false;
    const hooks = recordingHooks({
      onSnapshotted: () => {
        snapshotLvAtSnapshotted = node.pve.lvs().some((lv) => lv.name === "snap_vm-101-disk-0_vzdump");
      },
    });
    const result = await run(hooks);
    assert.deepEqual(hooks.phases(), ["quiesce", "snapshotting:snapshot", "snapshotted:snapshot", "archiving:snapshot"]);
    assert.ok(snapshotLvAtSnapshotted, "the vzdump snapshot existed when the stacks were told they may resume");
    assert.match(result.archivePath, /\/vzdump-lxc-101-\d{4}_\d\d_\d\d-\d\d_\d\d_\d\d\.tar\.zst$/);
    assert.ok(existsSync(result.archivePath));
    assert.ok(result.archiveBytes > 0);
    const argv = node.runner.argvs();
    assert.deepEqual(node.pve.calls("vzdump").map((c) => c.args), [
      ["101", "--mode", "snapshot", "--script", node.hookScriptPath, "--storage", "local", "--compress", "zstd", "--lockwait", "180"],
    ]);
    assert.deepEqual(argv.slice(0, 4), [
      ["pvesh", "get", "/nodes/pve1/lxc", "--output-format", "json"],
      ["pvesh", "get", "/nodes/pve1/qemu", "--output-format", "json"],
      ["pct", "config", "101"],
      ["lvs", "--noheadings", "--separator", ":", "--units", "b", "--nosuffix", "--options", "vg_name,lv_name,lv_attr,pool_lv,origin,lv_size,data_percent,metadata_percent", "pve/data"],
    ]);
    assert.deepEqual(argv.at(-1), ["pct", "config", "101"], "snapshot checked at pre-restart");
    const notes = hooks.notes();
    assert.ok(notes.includes("thin pool pve/data: data 12.50%, metadata 3.25%"), notes.join("\n"));
    assert.ok(notes.includes("vzdump: INFO: create storage snapshot 'vzdump'"), notes.join("\n"));
    assert.ok(notes.some((n) => n.startsWith("vzdump: INFO: lull: stacks of guest 101 quiesced")), notes.join("\n"));
    assert.ok(notes.includes("vzdump: INFO: Backup job finished successfully"));
    const last = hooks.calls.filter((c) => c.kind === "progress").at(-1);
    assert.deepEqual(last, { kind: "progress", done: result.archiveBytes, total: result.archiveBytes });
    assert.equal(node.pve.guest(101)!.lock, undefined);
  });

  it("snapshot falling back to suspend: no snapshotted, and a note says so", async () => {
    seedCt();
    node.pve.setFaults({ snapshotPrepareFail: "some volumes do not support snapshots" });
    const hooks = recordingHooks();
    await run(hooks);
    assert.deepEqual(hooks.phases(), ["quiesce", "snapshotting:suspend", "archiving:suspend"]);
    assert.ok(hooks.notes().includes("vzdump backs up guest 101 in suspend mode (asked for snapshot): no snapshotted, the stacks resume when the job ends"));
  });

  it("stop mode: quiesce, snapshotting:stop, archiving — never snapshotted", async () => {
    seedCt();
    const hooks = recordingHooks();
    await run(hooks, "stop");
    assert.deepEqual(hooks.phases(), ["quiesce", "snapshotting:stop", "archiving:stop"]);
  });

  it("a stopped container: nothing to quiesce, stop mode", async () => {
    seedCt("stopped");
    const hooks = recordingHooks();
    await run(hooks);
    assert.deepEqual(hooks.phases(), ["skip-quiesce", "snapshotting:stop", "archiving:stop"]);
    assert.deepEqual(hooks.calls.find((c) => c.kind === "skip-quiesce"), {
      kind: "skip-quiesce",
      reason: "guest 101 is not running (vzdump stop mode, no pre-stop)",
    });
  });

  it("snapshot failure (thin pool full at lvcreate): LULL_E_SNAPSHOT_FAILED with vzdump's error, no snapshotted", async () => {
    seedCt();
    node.pve.setFaults({ thinPoolFull: "pve/data" });
    const hooks = recordingHooks();
    await assert.rejects(run(hooks), (e: unknown) => {
      assert.ok(e instanceof LullError);
      assert.equal(e.code, "LULL_E_SNAPSHOT_FAILED");
      assert.match(e.message, /^vzdump: Backup of VM 101 failed - lvcreate snapshot 'pve\/snap_vm-101-disk-0_vzdump' error: +Cannot create new thin volume, free space in thin pool pve\/data reached threshold\.$/);
      return true;
    });
    assert.deepEqual(hooks.phases(), ["quiesce", "snapshotting:snapshot"]);
    assert.equal(node.pve.guest(101)!.lock, undefined);
  });

  it("a refused quiesce vetoes at pre-stop: the job fails with the refusal, before any snapshot", async () => {
    seedCt();
    const hooks = recordingHooks({ refuse: "stack db: migration in progress" });
    await assert.rejects(run(hooks), (e: unknown) => e instanceof LullError && e.code === "LULL_E_QUIESCE_REFUSED" && /migration in progress/.test(e.message));
    assert.deepEqual(hooks.phases(), ["quiesce"]);
    assert.equal(node.pve.calls("lvcreate").length, 0);
    assert.ok(hooks.notes().some((n) => n.includes("INFO: lull: backup vetoed: stack db: migration in progress")), hooks.notes().join("\n"));
    assert.equal(node.pve.guest(101)!.lock, undefined);
  });

  it("a failing backup-end hook after the snapshot fails the job with LULL_E_ARCHIVE_FAILED", async () => {
    seedCt();
    node.pve.setFaults({ hookFail: { phase: "backup-end", exitCode: 2 } });
    const hooks = recordingHooks();
    await assert.rejects(run(hooks), (e: unknown) => e instanceof LullError && e.code === "LULL_E_ARCHIVE_FAILED" && /backup-end snapshot 101' failed: exit code 2/.test(e.message));
    assert.deepEqual(hooks.phases(), ["quiesce", "snapshotting:snapshot", "snapshotted:snapshot", "archiving:snapshot"]);
  });

  it("reports the growing partial (<basename>.dat for an uncompressed .tar) as progress while a slow archive is written", async () => {
    node.pve.addContainer(101, { rootfs: { storage: "local-lvm", files: { "data/random.bin": randomBytes(96 * 1024) } } });
    node.pve.setFaults({ slowArchive: { chunkBytes: 4096, delayMs: 20 } });
    const hooks = recordingHooks();
    const result = await run(hooks, "snapshot", "0");
    const progress = hooks.calls.filter((c) => c.kind === "progress");
    assert.ok(progress.length >= 3, `progress calls: ${JSON.stringify(progress)}`);
    assert.ok(progress.slice(0, -1).every((p) => p.kind === "progress" && p.done <= result.archiveBytes && p.total === 0));
  });
});
