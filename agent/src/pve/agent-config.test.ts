// The Proxmox keys of the agent's configuration: vzdump guests next to native ones, the `pve` key
// with its defaults, errors that name the key, and configs written before either still valid.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { LullError } from "@lull/shared";
import { isNativeGuest, loadAgentConfig, snapshotKind } from "../config.js";

const dir = mkdtempSync(join(tmpdir(), "lull-pve-config-"));
after(() => rmSync(dir, { recursive: true, force: true }));

const base = { dataDir: "/var/lib/lull", archiveDir: "/srv/lull/archives", stagingDir: "/srv/lull/staging" };

function load(config: Record<string, unknown>) {
  const file = join(dir, "agent.json");
  writeFileSync(file, JSON.stringify({ ...base, ...config }));
  return loadAgentConfig({ config: file });
}

function errorOf(config: Record<string, unknown>): string {
  try {
    load(config);
  } catch (err) {
    assert.ok(err instanceof LullError && err.code === "LULL_E_CONFIG_INVALID", String(err));
    return err.message;
  }
  assert.fail("the config was accepted");
}

describe("agent config: Proxmox guests and the pve key", () => {
  it("a config from before vzdump (no engine key, no pve key) is still valid; pve gets its defaults", () => {
    const config = load({ guests: [{ id: "web", driver: "dir", volumes: [{ name: "data", path: "/srv/web" }] }] });
    assert.equal(config.guests[0]!.engine, "native");
    assert.ok(isNativeGuest(config.guests[0]!));
    assert.equal(config.pve.hook.socketPath, "/run/lull/vzdump-hook.sock");
    assert.equal(config.pve.hook.scriptPath, "/var/lib/lull/vzdump-hook.mjs");
    assert.equal(config.pve.vzdump.mode, "snapshot");
    assert.equal(config.pve.thinPool.maxMetadataPercent, 70);
  });

  it("vzdump guests sit next to native ones; a guest may ask for its own mode", () => {
    const config = load({
      guests: [
        { id: "101", engine: "vzdump" },
        { id: "102", engine: "vzdump", mode: "stop", policy: "crash-consistent" },
        { id: "web", driver: "btrfs", volumes: [{ name: "data", path: "/srv/web" }] },
      ],
      pve: { vzdump: { storage: "backup-nfs", compress: "gzip" }, hook: { preStopTimeoutMs: 60_000 } },
    });
    assert.deepEqual(config.guests.map((g) => [g.id, g.engine, snapshotKind(g)]), [["101", "vzdump", "snapshot"], ["102", "vzdump", "snapshot"], ["web", "native", "snapshot"]]);
    assert.equal(config.guests[1]!.engine === "vzdump" ? config.guests[1]!.mode : undefined, "stop");
    assert.equal(config.pve.vzdump.storage, "backup-nfs");
    assert.equal(config.pve.hook.preStopTimeoutMs, 60_000);
    assert.equal(config.pve.hook.replyTimeoutMs, 10_000);
  });

  it("errors name the key", () => {
    assert.match(errorOf({ guests: [{ id: "web", engine: "vzdump" }] }), /guests\.0\.id: must be a Proxmox vmid/);
    assert.match(errorOf({ guests: [{ id: "101", engine: "vzdump", driver: "dir" }] }), /guests\.0: Unrecognized key: "driver"/);
    assert.match(errorOf({ guests: [{ id: "101", engine: "vzdump", mode: "fast" }] }), /guests\.0\.mode: /);
    assert.match(errorOf({ guests: [{ id: "101", engine: "lxc" }] }), /guests\.0\.engine: /);
    assert.match(errorOf({ pve: { hook: { socketPath: "run/hook.sock" } } }), /pve\.hook\.socketPath: must be an absolute path/);
    assert.match(errorOf({ pve: { vzdump: { storage: "local", dumpdir: "/srv/dump" } } }), /pve\.vzdump\.dumpdir: storage and dumpdir are exclusive/);
    assert.match(errorOf({ pve: { thinPool: { maxDataPercent: 0 } } }), /pve\.thinPool\.maxDataPercent: /);
    assert.match(errorOf({ guests: [{ id: "101", engine: "vzdump" }, { id: "101", engine: "vzdump" }] }), /guests\.1\.id: duplicate guest id 101/);
  });
});
