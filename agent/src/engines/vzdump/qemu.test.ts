// The vzdump engine on VMs, against the fake Proxmox toolbox: snapshotted only at `started backup
// task` in snapshot mode (no hook marks that point), progress from the percentage lines.
import assert from "node:assert/strict";
import { afterEach, beforeEach, describe, it } from "node:test";
import { LullError, silentLogger, systemClock } from "@lull/shared";
import type { GuestConfig } from "../../config.js";
import { recordingHooks, startFakePveNode, type FakePveNode, type RecordingHooks } from "../../pve/testing/fake-pve.js";
import { createVzdumpEngine } from "./engine.js";

let node: FakePveNode;
const guest = { id: "100", engine: "vzdump" } as unknown as GuestConfig;

function run(hooks: RecordingHooks, mode: "snapshot" | "suspend" | "stop" = "snapshot") {
  const pve = { ...node.config, vzdump: { ...node.config.vzdump, mode, compress: "gzip" as const } };
  const engine = createVzdumpEngine({ pve, node: "pve1", runner: node.runner, launcher: node.launcher, hookServer: node.hookServer, hookScriptPath: node.hookScriptPath, clock: systemClock, log: silentLogger(), vzdumpEnv: node.env });
  return engine.run({ jobId: "j-00000000000000000000000vm1", guest, hooks, signal: new AbortController().signal, log: silentLogger() });
}

function seedVm(options: { status?: "running" | "stopped"; agentRunning?: boolean; agent?: boolean } = {}): void {
  node.pve.addVm(100, {
    name: "db01",
    status: options.status ?? "running",
    agent: options.agent ?? true,
    agentRunning: options.agentRunning ?? true,
    disks: [{ key: "scsi0", storage: "local-lvm", bytes: Buffer.alloc(512 * 1024, 9) }],
  });
}

beforeEach(async () => {
  node = await startFakePveNode();
});
afterEach(async () => {
  await node.close();
});

describe("vzdump engine, VM", () => {
  it("snapshot mode: every hook passes before the freeze; snapshotted at `started backup task`, then archiving with byte progress", async () => {
    seedVm();
    const hooks = recordingHooks();
    const result = await run(hooks);
    assert.deepEqual(hooks.phases(), ["quiesce", "snapshotting:snapshot", "snapshotted:snapshot", "archiving:snapshot"]);
    const notes = hooks.notes();
    const started = notes.findIndex((n) => /^vzdump: INFO: started backup task '[0-9a-f-]+'$/.test(n));
    const thaw = notes.indexOf("vzdump: INFO: issuing guest-agent 'fs-thaw' command");
    assert.ok(thaw >= 0 && started > thaw, notes.join("\n"));
    const snapshottedAt = hooks.calls.findIndex((c) => c.kind === "snapshotted");
    const startedAt = hooks.calls.findIndex((c) => c.kind === "note" && c.message.startsWith("vzdump: INFO: started backup task"));
    assert.ok(snapshottedAt > startedAt, "snapshotted right after the line that marks the consistent point");
    const progress = hooks.calls.filter((c) => c.kind === "progress");
    assert.ok(progress.length >= 2);
    assert.deepEqual(progress[progress.length - 2], { kind: "progress", done: 512 * 1024, total: 512 * 1024 }, "100% line: 512.0 KiB of 512.0 KiB");
    assert.ok(!notes.some((n) => /^vzdump: INFO: +\d+%/.test(n)), "progress lines are progress, not notes");
    assert.match(result.archivePath, /vzdump-qemu-100-.*\.vma\.gz$/);
  });

  it("a skipped guest-agent freeze is noted as crash-consistent inside the VM", async () => {
    seedVm({ agentRunning: false });
    const hooks = recordingHooks();
    await run(hooks);
    assert.deepEqual(hooks.phases(), ["quiesce", "snapshotting:snapshot", "snapshotted:snapshot", "archiving:snapshot"]);
    assert.ok(hooks.notes().some((n) => n.includes("freeze was skipped; data inside the VM is crash-consistent")), hooks.notes().join("\n"));
  });

  it("each freeze line of current qemu-server is noted as a crash-consistent downgrade naming vzdump's reason", async () => {
    const downgrade = (hooks: RecordingHooks) => hooks.notes().filter((n) => /^guest 100: the guest agent's filesystem freeze (was skipped|failed)/.test(n));
    seedVm({ agent: false });
    const disabled = recordingHooks();
    await run(disabled);
    assert.deepEqual(downgrade(disabled), [
      "guest 100: the guest agent's filesystem freeze was skipped; data inside the VM is crash-consistent unless its apps were stopped (vzdump: disabled in VM options)",
    ]);
    await node.close();
    node = await startFakePveNode();
    seedVm();
    node.pve.setGuest(100, { fsFrozen: true });
    const frozen = recordingHooks();
    await run(frozen);
    assert.deepEqual(downgrade(frozen), [
      "guest 100: the guest agent's filesystem freeze was skipped; data inside the VM is crash-consistent unless its apps were stopped (vzdump: already frozen)",
    ]);
    for (const [fault, message] of [
      ["error", "unable to freeze guest fs - The command guest-fsfreeze-freeze has been disabled for this instance"],
      ["status", "querying status after freezing guest fs failed - timeout after 60 minutes"],
    ] as const) {
      node.pve.setGuest(100, { fsFrozen: false });
      node.pve.setFaults({ qgaFreezeFail: fault });
      const failed = recordingHooks();
      const result = await run(failed);
      assert.match(result.archivePath, /\.vma\.gz$/, "a failed freeze does not fail the backup");
      assert.deepEqual(downgrade(failed), [`guest 100: the guest agent's filesystem freeze failed (${message}); crash-consistent unless its apps were stopped`]);
    }
  });

  it("stop mode has no freeze and no freeze note (vzdump prints no skip line there)", async () => {
    seedVm();
    const hooks = recordingHooks();
    await run(hooks, "stop");
    assert.ok(!hooks.notes().some((n) => /freeze/.test(n)), hooks.notes().join("\n"));
  });

  it("suspend and stop modes never emit snapshotted", async () => {
    seedVm();
    const suspend = recordingHooks();
    await run(suspend, "suspend");
    assert.deepEqual(suspend.phases(), ["quiesce", "snapshotting:suspend", "archiving:suspend"]);
    const stop = recordingHooks();
    await run(stop, "stop");
    assert.deepEqual(stop.phases(), ["quiesce", "snapshotting:stop", "archiving:stop"]);
  });

  it("a stopped VM: no quiesce, stop mode, no snapshotted even though vzdump logs `started backup task`", async () => {
    seedVm({ status: "stopped" });
    const hooks = recordingHooks();
    await run(hooks);
    assert.deepEqual(hooks.phases(), ["skip-quiesce", "snapshotting:stop", "archiving:stop"]);
    assert.ok(hooks.notes().some((n) => n.startsWith("vzdump: INFO: started backup task")));
  });

  it("a failure after the job started is LULL_E_ARCHIVE_FAILED with vzdump's error line", async () => {
    seedVm();
    node.pve.setFaults({ hookFail: { phase: "backup-end", exitCode: 4 } });
    const hooks = recordingHooks();
    await assert.rejects(run(hooks), (e: unknown) => {
      assert.ok(e instanceof LullError);
      assert.equal(e.code, "LULL_E_ARCHIVE_FAILED");
      assert.match(e.message, /^vzdump: Backup of VM 100 failed - command '.*vzdump-hook\.mjs backup-end snapshot 100' failed: exit code 4$/);
      return true;
    });
    assert.deepEqual(hooks.phases(), ["quiesce", "snapshotting:snapshot", "snapshotted:snapshot", "archiving:snapshot"]);
  });

  it("a VM that is not on this node is LULL_E_UNKNOWN_GUEST before vzdump runs", async () => {
    const hooks = recordingHooks();
    await assert.rejects(run(hooks), (e: unknown) => e instanceof LullError && e.code === "LULL_E_UNKNOWN_GUEST");
    assert.deepEqual(node.pve.calls("vzdump"), []);
  });
});
