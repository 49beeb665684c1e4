// The agent's own roots and the guests' volumes, symlinks resolved, never contain one another.
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { LullError } from "@lull/shared";
import { agentConfigSchema, checkConfigPaths } from "./config.js";

const dir = mkdtempSync(join(tmpdir(), "lull-config-paths-"));
after(() => rmSync(dir, { recursive: true, force: true }));
for (const d of ["data", "archives", "staging", "vol", "elsewhere"]) mkdirSync(join(dir, d));

function config(overrides: Record<string, unknown> = {}, volume = join(dir, "vol")) {
  return agentConfigSchema.parse({
    dataDir: join(dir, "data"),
    archiveDir: join(dir, "archives"),
    stagingDir: join(dir, "staging"),
    guests: [{ id: "101", driver: "dir", volumes: [{ name: "data", path: volume }] }],
    ...overrides,
  });
}

const refused = (key: RegExp) => (err: unknown) => err instanceof LullError && err.code === "LULL_E_CONFIG_INVALID" && key.test(err.message);

test("separate roots and volumes pass", () => {
  checkConfigPaths(config());
});

test("a volume that holds the agent's data dir (its keys and tokens) or its archives is refused", () => {
  assert.throws(() => checkConfigPaths(config({}, dir)), refused(/^guests\.0\.volumes\.0\.path: .* overlaps dataDir/));
  assert.throws(() => checkConfigPaths(config({}, join(dir, "archives", "x"))), refused(/overlaps archiveDir/));
  assert.throws(() => checkConfigPaths(config({}, "/")), refused(/overlaps dataDir/));
});

test("symlinks are resolved: a volume that leads into the staging dir, roots inside each other", () => {
  symlinkSync(join(dir, "staging"), join(dir, "link-to-staging"));
  assert.throws(() => checkConfigPaths(config({}, join(dir, "link-to-staging"))), refused(/overlaps stagingDir/));
  assert.throws(() => checkConfigPaths(config({ archiveDir: join(dir, "data", "archives") })), refused(/^archiveDir: .* overlaps dataDir/));
  symlinkSync(join(dir, "archives"), join(dir, "staging-link"));
  assert.throws(() => checkConfigPaths(config({ stagingDir: join(dir, "staging-link") })), refused(/^stagingDir: .* overlaps archiveDir/));
});

test("archiveDir/<guest> must be a real directory, not a symlink leading elsewhere", () => {
  symlinkSync(join(dir, "elsewhere"), join(dir, "archives", "101"));
  assert.throws(() => checkConfigPaths(config()), refused(/archives\/101 exists and is not a directory/));
  rmSync(join(dir, "archives", "101"));
  writeFileSync(join(dir, "archives", "101"), "");
  assert.throws(() => checkConfigPaths(config()), refused(/not a directory/));
  rmSync(join(dir, "archives", "101"));
});
