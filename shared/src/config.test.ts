import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { LullError } from "./errors.js";
import { loadConfig, mergeLayers, z } from "./config.js";

const schema = z.strictObject({
  name: z.string(),
  port: z.number().int().default(7450),
  nested: z.strictObject({ level: z.enum(["info", "debug"]).default("info") }).prefault({}),
});

function file(content: string): string {
  const dir = mkdtempSync(join(tmpdir(), "lull-config-"));
  const path = join(dir, "config.json");
  writeFileSync(path, content);
  return path;
}

test("layers: flags > env > file > defaults, result frozen", () => {
  const cfg = loadConfig(schema, {
    file: file(JSON.stringify({ name: "file", port: 1, nested: { level: "debug" } })),
    env: { port: 2 },
    flags: { name: "flag" },
  });
  assert.deepEqual(cfg, { name: "flag", port: 2, nested: { level: "debug" } });
  assert.ok(Object.isFrozen(cfg) && Object.isFrozen(cfg.nested));
});

test("errors name the bad key and the file", () => {
  const path = file(JSON.stringify({ name: "x", nested: { level: "loud" } }));
  assert.throws(
    () => loadConfig(schema, { file: path }),
    (err: unknown) => err instanceof LullError && err.code === "LULL_E_CONFIG_INVALID" && err.message.includes(`${path}: nested.level:`),
  );
  assert.throws(() => loadConfig(schema, { file: file(JSON.stringify({ name: "x", colour: 1 })) }), /colour/);
});

test("unreadable and malformed files are clear errors", () => {
  assert.throws(() => loadConfig(schema, { file: "/nonexistent/lull.json" }), /cannot read config file \/nonexistent\/lull.json/);
  assert.throws(() => loadConfig(schema, { file: file("{ not json") }), /is not valid JSON/);
  assert.throws(() => loadConfig(schema, { file: file("[1,2]") }), /must hold a JSON object/);
});

test("mergeLayers replaces arrays and skips undefined", () => {
  assert.deepEqual(mergeLayers({ a: [1, 2], b: { c: 1 } }, { a: [3], b: { d: 2 }, e: undefined }), { a: [3], b: { c: 1, d: 2 } });
});

test("a config file may carry // and /* */ comments (the packaged example does); a URL's // stays", () => {
  const url = z.strictObject({ name: z.string(), port: z.number(), nested: z.strictObject({ level: z.string() }).prefault({ level: "info" }) });
  const cfg = loadConfig(url, {
    file: file('{\n  // who this is\n  "name": "http://example.com/x", /* the port */ "port": 3\n}\n'),
  });
  assert.deepEqual(cfg, { name: "http://example.com/x", port: 3, nested: { level: "info" } });
  assert.throws(() => loadConfig(schema, { file: file('{ "name": "a", // no closing brace\n') }), /is not valid JSON/);
});
