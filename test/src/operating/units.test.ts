// The packaged systemd units: the agent's hardening must not block what vzdump's children (pct,
// qm, kvm, lxc-*, LVM and ZFS tools) need, since they inherit the agent's sandbox; the controller's
// template reads /etc/lull/controller/<stack>.json. Checked on the unit files as shipped, and the
// settings that stay are run for real where this machine can (NoNewPrivileges + UMask on a child
// that unshares a mount namespace and writes /var/tmp, as vzdump does).
import { strict as assert } from "node:assert";
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { loadAgentConfig } from "@lull/agent";
import { REPO_ROOT } from "../support/paths.js";

function unit(path: string): Map<string, string[]> {
  const keys = new Map<string, string[]>();
  for (const raw of readFileSync(join(REPO_ROOT, path), "utf8").split("\n")) {
    const line = raw.trim();
    if (!line || line.startsWith("#") || line.startsWith("[")) continue;
    const at = line.indexOf("=");
    assert.ok(at > 0, `${path}: not a key=value line: ${line}`);
    const key = line.slice(0, at);
    keys.set(key, [...(keys.get(key) ?? []), line.slice(at + 1)]);
  }
  return keys;
}

/** Settings that break vzdump or what it starts (agent/PROXMOX.md says why for each). */
const BLOCKS_VZDUMP: Array<[string, (v: string) => boolean]> = [
  ["ProtectSystem", (v) => v === "full" || v === "strict"],
  ["ReadOnlyPaths", (v) => /(^|\s)-?\/etc(\/|\s|$)/.test(v)],
  ["PrivateTmp", (v) => v === "yes" || v === "true"],
  ["ProtectControlGroups", (v) => v === "yes" || v === "true"],
  ["PrivateDevices", (v) => v === "yes" || v === "true"],
  ["DevicePolicy", () => true],
  ["ProtectKernelTunables", (v) => v === "yes" || v === "true"],
  ["RestrictNamespaces", (v) => v !== "no" && v !== "false"],
  ["SystemCallFilter", () => true],
  ["CapabilityBoundingSet", () => true],
  ["MemoryDenyWriteExecute", (v) => v === "yes" || v === "true"],
  ["PrivateUsers", (v) => v === "yes" || v === "true"],
  ["PrivateNetwork", (v) => v === "yes" || v === "true"],
];

describe("packaged systemd units", () => {
  const agent = unit("packaging/lull-agent/lull-agent.service");

  it("the agent's unit has none of the settings that break vzdump's children", () => {
    for (const [key, breaks] of BLOCKS_VZDUMP) {
      for (const value of agent.get(key) ?? []) assert.ok(!breaks(value), `lull-agent.service: ${key}=${value} breaks vzdump, pct, qm or LVM`);
    }
    const families = (agent.get("RestrictAddressFamilies") ?? []).join(" ");
    for (const family of ["AF_UNIX", "AF_INET", "AF_INET6", "AF_NETLINK"]) assert.match(families, new RegExp(family), `${family} stays allowed (pmxcfs, qmp sockets, LVM's netlink)`);
  });

  it("the agent's unit keeps its hardening and runs the installed binary with the packaged config", () => {
    for (const [key, value] of [
      ["NoNewPrivileges", "yes"],
      ["ProtectSystem", "yes"],
      ["ProtectKernelLogs", "yes"],
      ["ProtectClock", "yes"],
      ["RestrictSUIDSGID", "yes"],
      ["LockPersonality", "yes"],
      ["UMask", "0077"],
      ["RuntimeDirectory", "lull"],
      ["RuntimeDirectoryMode", "0700"],
      ["KillMode", "mixed"],
      ["ExecStart", "/usr/bin/lull-agent --config /etc/lull/agent.json"],
    ]) {
      assert.deepEqual(agent.get(key as string), [value], `${key}=${value}`);
    }
  });

  it("the controller's template reads /etc/lull/controller/<stack>.json", () => {
    const ctl = unit("packaging/lull-controller/lull-controller@.service");
    assert.deepEqual(ctl.get("ExecStart"), ["/usr/bin/lull-controller --config /etc/lull/controller/%i.json"]);
    assert.deepEqual(ctl.get("ConditionPathExists"), ["/etc/lull/controller/%i.json"]);
    assert.deepEqual(ctl.get("NoNewPrivileges"), ["yes"]);
  });

  it("the packaged /etc/lull/agent.json loads as shipped (comments and all): no guests, metrics and notifications off", () => {
    const config = loadAgentConfig({ config: join(REPO_ROOT, "packaging/lull-agent/agent.json") });
    assert.equal(config.dataDir, "/var/lib/lull/state");
    assert.equal(config.listen.socket, "/run/lull/agent.sock");
    assert.deepEqual(config.guests, []);
    assert.equal(config.metrics.address, undefined);
    assert.deepEqual(config.notifications.targets, []);
  });

  it("under NoNewPrivileges and UMask 0077 a child can still unshare a mount namespace and write /var/tmp, as vzdump does", () => {
    const out = execFileSync(
      "setpriv",
      ["--no-new-privs", "sh", "-c", "umask 0077 && unshare --mount --propagation private sh -c 'grep NoNewPrivs /proc/self/status; t=$(mktemp /var/tmp/vzdumptmp.XXXXXX) && stat -c %a \"$t\" && rm \"$t\"'"],
      { encoding: "utf8" },
    );
    assert.match(out, /NoNewPrivs:\s+1/, "the sandbox setting is in force in the child");
    assert.match(out, /^600$/m, "files the child makes are private (UMask)");
  });
});
