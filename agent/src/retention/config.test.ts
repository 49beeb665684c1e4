// The `retention` key through the agent's real config loader: defaults that keep a few months,
// and errors that name the bad key.
import { strict as assert } from "node:assert";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { LullError } from "@lull/shared";
import { loadAgentConfig } from "../config.js";
import { DAY_MS, retentionPolicy } from "./config.js";

const dir = mkdtempSync(join(tmpdir(), "lull-retention-config-"));
after(() => rmSync(dir, { recursive: true, force: true }));

function load(retention: unknown) {
  const path = join(dir, "agent.json");
  const base = { dataDir: join(dir, "data"), archiveDir: join(dir, "archives"), stagingDir: join(dir, "staging") };
  writeFileSync(path, JSON.stringify(retention === undefined ? base : { ...base, retention }));
  return loadAgentConfig({ config: path });
}

function rejects(retention: unknown, key: RegExp) {
  assert.throws(
    () => load(retention),
    (err: unknown) => err instanceof LullError && err.code === "LULL_E_CONFIG_INVALID" && key.test(err.message),
  );
}

describe("retention config", () => {
  it("defaults keep ended jobs 90 days and each guest's 10 newest, pruning every hour", () => {
    const config = load(undefined);
    assert.deepEqual(config.retention, { jobs: { maxAgeDays: 90, keepLast: 10 }, intervalMinutes: 60 });
    assert.deepEqual(retentionPolicy(config.retention), { maxAgeMs: 90 * DAY_MS, keepLast: 10 });
    assert.deepEqual(load({ jobs: { keepLast: 0 } }).retention.jobs, { maxAgeDays: 90, keepLast: 0 });
  });

  it("names the bad key", () => {
    rejects({ jobs: { maxAgeDays: 0 } }, /retention\.jobs\.maxAgeDays/);
    rejects({ jobs: { maxAgeDays: 1.5 } }, /retention\.jobs\.maxAgeDays/);
    rejects({ jobs: { keepLast: -1 } }, /retention\.jobs\.keepLast/);
    rejects({ intervalMinutes: 0 }, /retention\.intervalMinutes/);
    rejects({ jobs: { maxAge: 30 } }, /retention\.jobs.*maxAge/);
    rejects({ events: {} }, /retention.*events/);
    rejects({ jobs: "90d" }, /retention\.jobs/);
  });
});
