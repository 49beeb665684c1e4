// The `groups` config key and the members a group request resolves to: what an operator sees
// when a group is misconfigured or asked for wrongly (every message names the key or the guest).
import { strict as assert } from "node:assert";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { StartGroupBackupRequest } from "@lull/proto";
import { LullError } from "@lull/shared";
import { loadAgentConfig, type GuestConfig } from "../config.js";
import { groupConfigIssues } from "./config.js";
import { membersOf } from "../api/group-validate.js";

const guest = (id: string) => ({ id, driver: "dir", snapshot: "copy", volumes: [{ name: "data", path: `/srv/${id}` }] });

function loadWith(groups: unknown): ReturnType<typeof loadAgentConfig> {
  const dir = mkdtempSync(join(tmpdir(), "lull-group-config-"));
  try {
    const file = join(dir, "agent.json");
    writeFileSync(file, JSON.stringify({ dataDir: "/var/lib/lull", archiveDir: "/srv/archives", stagingDir: "/srv/staging", guests: ["101", "102", "103"].map(guest), groups }));
    return loadAgentConfig({ config: file });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function configError(groups: unknown): string {
  try {
    loadWith(groups);
  } catch (err) {
    assert.ok(err instanceof LullError && err.code === "LULL_E_CONFIG_INVALID", String(err));
    return err.message;
  }
  return assert.fail("the config was accepted");
}

describe("groups in the agent config", () => {
  it("accepts groups of configured guests, with their own policy and timeout", () => {
    const config = loadWith([{ id: "shop", guests: ["102", "101"], policy: "crash-consistent", quiesceTimeoutMs: 30_000 }]);
    assert.deepEqual(config.groups, [{ id: "shop", guests: ["102", "101"], policy: "crash-consistent", quiesceTimeoutMs: 30_000 }]);
    assert.deepEqual(loadWith(undefined).groups, []);
  });

  it("refuses unknown or repeated members, one-guest groups and duplicate ids, naming the key", () => {
    assert.match(configError([{ id: "shop", guests: ["101", "999"] }]), /groups\.0\.guests\.1: guest 999 is not configured/);
    assert.match(configError([{ id: "shop", guests: ["101", "101"] }]), /groups\.0\.guests\.1: guest 101 is listed twice/);
    assert.match(configError([{ id: "shop", guests: ["101"] }]), /groups\.0\.guests: a group needs at least two guests/);
    assert.match(
      configError([
        { id: "shop", guests: ["101", "102"] },
        { id: "shop", guests: ["102", "103"] },
      ]),
      /groups\.1\.id: duplicate group id shop/,
    );
    assert.match(configError([{ id: "Shop!", guests: ["101", "102"] }]), /groups\.0\.id: must match/);
  });

  it("takes one vzdump guest per node, and refuses a second one (vzdump backs a node's guests up one at a time)", () => {
    const engines = [
      { id: "101", engine: "native" },
      { id: "200", engine: "vzdump" },
      { id: "201", engine: "vzdump" },
    ];
    assert.deepEqual(groupConfigIssues([{ id: "mixed", guests: ["101", "200"] }], engines), []);
    const issues = groupConfigIssues([{ id: "two", guests: ["101", "200", "201"] }], engines);
    assert.deepEqual(issues.map((i) => i.path.join(".")), ["groups.0.guests"]);
    assert.match(issues[0]?.message ?? "", /guests 200, 201 of this node all use the vzdump engine: .*at most one vzdump guest per node/);
  });
});

describe("members on other nodes (remote)", () => {
  const here = [{ id: "101", engine: "native" }];
  const cluster = { node: "pve1", clusterEnabled: true };
  const paths = (issues: { path: (string | number)[] }[]) => issues.map((i) => i.path.join("."));

  it("accepts one local guest with a member on another node when the cluster listener is on", () => {
    assert.deepEqual(groupConfigIssues([{ id: "shop", guests: ["101"], remote: [{ guest: "201", node: "pve2" }] }], here, cluster), []);
  });

  it("refuses remote members without the cluster listener, naming the setting to change", () => {
    const issues = groupConfigIssues([{ id: "shop", guests: ["101"], remote: [{ guest: "201", node: "pve2" }] }], here, { node: "pve1", clusterEnabled: false });
    assert.deepEqual(paths(issues), ["groups.0.remote"]);
    assert.match(issues[0]?.message ?? "", /set cluster\.enabled to true/);
  });

  it("refuses this node as a remote member's node, a remote member listed twice, and a group of one", () => {
    const issues = groupConfigIssues(
      [
        { id: "a", guests: ["101"], remote: [{ guest: "202", node: "pve1" }] },
        { id: "b", guests: ["101"], remote: [{ guest: "201", node: "pve2" }, { guest: "201", node: "pve2" }] },
        { id: "c", guests: ["101"] },
      ],
      here,
      cluster,
    );
    assert.deepEqual(paths(issues), ["groups.0.remote.0.node", "groups.1.remote.1", "groups.2.guests"]);
    assert.match(issues[0]?.message ?? "", /node pve1 is this node: list guest 202 under guests instead/);
    assert.match(issues[1]?.message ?? "", /guest 201 of node pve2 is listed twice/);
    assert.match(issues[2]?.message ?? "", /a group needs at least two guests/);
  });

  it("refuses a malformed node name when the config is loaded", () => {
    assert.match(configError([{ id: "shop", guests: ["101"], remote: [{ guest: "201", node: "pve 2" }] }]), /groups\.0\.remote\.0\.node: must be a Proxmox node name/);
  });
});

describe("members of a group request", () => {
  const guests = new Map<string, GuestConfig>(
    ["101", "102"].map((id) => [id, { ...guest(id), engine: "native", driver: "dir", snapshot: "copy" } as GuestConfig]),
  );
  // A vzdump guest as the vzdump engine's config will describe it (the schema is merged separately).
  guests.set("200", { ...guest("200"), engine: "vzdump" } as unknown as GuestConfig);
  guests.set("201", { ...guest("201"), engine: "vzdump" } as unknown as GuestConfig);
  const groups = new Map([["shop", { id: "shop", guests: ["102", "101"] }]]);
  const request = (r: Partial<StartGroupBackupRequest>) => StartGroupBackupRequest.fromPartial(r);

  it("resolves a configured group to its sorted members; listed guests must be exactly those", () => {
    assert.deepEqual(membersOf(guests, groups, request({ groupId: "shop" })).members.map((g) => g.id), ["101", "102"]);
    assert.deepEqual(membersOf(guests, groups, request({ groupId: "shop", guestIds: ["101", "102"] })).members.map((g) => g.id), ["101", "102"]);
    assert.throws(() => membersOf(guests, groups, request({ groupId: "shop", guestIds: ["101"] })), /exactly the members of group shop/);
  });

  it("takes an ad hoc group with one vzdump guest; two of this node are LULL_E_GROUP_UNSUPPORTED", () => {
    assert.deepEqual(membersOf(guests, groups, request({ guestIds: ["101", "200"] })).members.map((g) => g.id), ["101", "200"]);
    assert.throws(
      () => membersOf(guests, groups, request({ guestIds: ["101", "200", "201"] })),
      (err: unknown) => err instanceof LullError && err.code === "LULL_E_GROUP_UNSUPPORTED" && /guests 200, 201 of this node all use the vzdump engine/.test(err.message),
    );
  });
});
