// Retention per guest or per consistency group: which keep options a guest gets, and the config
// errors an operator sees for a group or guest that does not exist or a guest in two groups whose
// options differ (each names the key and the fix).
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { loadAgentConfig } from "../config.js";
import { keepOptionsFor, pruneConfigSchema } from "./config.js";

const guest = (id: string) => ({ id, driver: "dir", snapshot: "copy", volumes: [{ name: "data", path: `/srv/${id}` }] });
const GROUPS = [
  { id: "shop", guests: ["101", "102"] },
  { id: "mail", guests: ["102", "103"] },
];

function load(prune: unknown) {
  const dir = mkdtempSync(join(tmpdir(), "lull-prune-config-"));
  try {
    const file = join(dir, "agent.json");
    writeFileSync(file, JSON.stringify({ dataDir: "/var/lib/lull", archiveDir: "/srv/archives", stagingDir: "/srv/staging", guests: ["101", "102", "103", "104"].map(guest), groups: GROUPS, prune }));
    return loadAgentConfig({ config: file });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function loadError(prune: unknown): string {
  try {
    load(prune);
  } catch (err) {
    return (err as Error).message;
  }
  assert.fail("the config was accepted");
}

describe("prune config per guest and group", () => {
  it("a guest's own options first, then its group's, then the agent-wide ones", () => {
    const prune = pruneConfigSchema.parse({ keep: { keepLast: 2 }, guests: { "103": { keepLast: 9 } }, groups: { shop: { keepDaily: 14 } } });
    assert.deepEqual(keepOptionsFor(prune, "103", GROUPS), { keep: { keepLast: 9 }, from: "prune.guests.103" });
    assert.deepEqual(keepOptionsFor(prune, "101", GROUPS), { keep: { keepDaily: 14 }, from: "prune.groups.shop" });
    assert.deepEqual(keepOptionsFor(prune, "102", GROUPS), { keep: { keepDaily: 14 }, from: "prune.groups.shop" }, "in shop and mail; only shop has options");
    assert.deepEqual(keepOptionsFor(prune, "104", GROUPS), { keep: { keepLast: 2 }, from: "prune.keep" });
  });

  it("loads a config with group retention", () => {
    const config = load({ groups: { shop: { keepDaily: 7 }, mail: { keepDaily: 7 } } });
    assert.deepEqual(config.prune.groups, { shop: { keepDaily: 7 }, mail: { keepDaily: 7 } });
  });

  it("refuses a group or guest that is not configured, naming the key", () => {
    assert.match(loadError({ groups: { shopp: { keepLast: 1 } } }), /prune\.groups\.shopp.*group shopp is not configured under groups/s);
    assert.match(loadError({ guests: { "999": { keepLast: 1 } } }), /prune\.guests\.999.*guest 999 is not configured under guests/s);
  });

  it("refuses a guest in two groups whose options differ, unless the guest has its own", () => {
    assert.match(loadError({ groups: { shop: { keepDaily: 7 }, mail: { keepLast: 3 } } }), /guest 102 is in groups shop and mail, whose keep options differ: give the guest its own under prune\.guests/);
    const config = load({ groups: { shop: { keepDaily: 7 }, mail: { keepLast: 3 } }, guests: { "102": { keepLast: 5 } } });
    assert.deepEqual(keepOptionsFor(config.prune, "102", config.groups).keep, { keepLast: 5 });
  });
});
