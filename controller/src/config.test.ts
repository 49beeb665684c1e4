import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { LullError } from "@lull/shared";
import { defaultControllerId, loadControllerConfig } from "./config.js";

const driver = { type: "command", start: ["/bin/true"], stop: ["/bin/true"], status: ["/bin/true"] };

function withFile(content: unknown, fn: (path: string) => void): void {
  const dir = mkdtempSync(join(tmpdir(), "lull-ctl-config-"));
  try {
    const path = join(dir, "controller.json");
    writeFileSync(path, typeof content === "string" ? content : JSON.stringify(content));
    fn(path);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function configError(fn: () => unknown): LullError {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof LullError);
    assert.equal(err.code, "LULL_E_CONFIG_INVALID");
    return err;
  }
  assert.fail("expected a config error");
}

test("defaults fill in everything but guest, stack and driver; the result is frozen", () => {
  withFile({ guestId: "demo", stack: "app", driver }, (path) => {
    const c = loadControllerConfig({ config: path }, {});
    assert.equal(c.agent.address, "127.0.0.1:7450");
    assert.equal(c.markerDir, "/var/lib/lull-controller");
    assert.equal(c.resumeDeadlineMs, 300_000);
    assert.equal(c.pollIntervalMs, 2_000);
    assert.equal(c.leaseTtlMs, 15_000);
    assert.equal(c.resume, "early");
    assert.equal(c.logLevel, "info");
    assert.equal(c.driver.type, "command");
    assert.equal(c.driver.timeoutMs, 60_000);
    assert.match(c.controllerId, new RegExp(`-${process.pid}$`));
    assert.equal(c.failpoint, undefined);
    assert.ok(Object.isFrozen(c) && Object.isFrozen(c.driver));
  });
});

test("compose driver defaults", () => {
  withFile({ guestId: "demo", stack: "app", driver: { type: "compose", project: "app", files: ["/srv/app/compose.yaml"] } }, (path) => {
    const c = loadControllerConfig({ config: path }, {});
    assert.deepEqual(c.driver, { type: "compose", project: "app", files: ["/srv/app/compose.yaml"], docker: "docker", timeoutMs: 120_000, verifyTimeoutMs: 10_000 });
  });
});

test("flags > environment > file", () => {
  withFile({ guestId: "demo", stack: "app", driver, logLevel: "warn", agent: { address: "10.0.0.1:7450" } }, (path) => {
    const env = { LULL_LOG_LEVEL: "debug", LULL_CONTROLLER_AGENT: "10.0.0.2:7450", LULL_CONTROLLER_FAILPOINT: "after-stop" };
    const fromEnv = loadControllerConfig({ config: path }, env);
    assert.equal(fromEnv.logLevel, "debug");
    assert.equal(fromEnv.agent.address, "10.0.0.2:7450");
    assert.equal(fromEnv.agent.callTimeoutMs, 5_000, "a nested key from env keeps the other defaults");
    assert.equal(fromEnv.failpoint, "after-stop");
    assert.equal(loadControllerConfig({ config: path, logLevel: "error" }, env).logLevel, "error");
  });
  withFile({ stack: "app", driver }, (path) => {
    assert.equal(loadControllerConfig({}, { LULL_CONTROLLER_CONFIG: path, LULL_CONTROLLER_GUEST: "101" }).guestId, "101");
  });
});

test("errors name the offending key", () => {
  withFile({ guestId: "demo", stack: "app", driver: { type: "command", start: [], stop: ["x"], status: ["x"] } }, (path) => {
    assert.match(configError(() => loadControllerConfig({ config: path }, {})).message, /driver\.start/);
  });
  withFile({ guestId: "demo", stack: "app", driver, resumeDeadlineMs: -5 }, (path) => {
    assert.match(configError(() => loadControllerConfig({ config: path }, {})).message, /resumeDeadlineMs/);
  });
  withFile({ guestId: "demo", stack: "app", driver, resumeDeadlineMs: 10_000, resumeLeadMs: 6_000 }, (path) => {
    assert.match(configError(() => loadControllerConfig({ config: path }, {})).message, /resumeLeadMs: must be at most half of resumeDeadlineMs \(5000 ms\)/);
  });
  withFile({ guestId: "demo", stack: "App Stack", driver }, (path) => {
    assert.match(configError(() => loadControllerConfig({ config: path }, {})).message, /\bstack\b/);
  });
  withFile({ guestId: "demo", stack: "app", driver, resume: "later" }, (path) => {
    assert.match(configError(() => loadControllerConfig({ config: path }, {})).message, /\bresume\b/);
  });
  withFile({ guestId: "demo", stack: "app", driver, markerDir: "relative/dir" }, (path) => {
    assert.match(configError(() => loadControllerConfig({ config: path }, {})).message, /markerDir: must be an absolute path/);
  });
  withFile({ guestId: "demo", stack: "app", driver, surprise: 1 }, (path) => {
    assert.match(configError(() => loadControllerConfig({ config: path }, {})).message, /surprise/);
  });
  withFile({ guestId: "demo", stack: "app", driver }, (path) => {
    assert.match(configError(() => loadControllerConfig({ config: path }, { LULL_CONTROLLER_FAILPOINT: "nowhere" })).message, /failpoint/);
  });
  withFile({ stack: "app", driver }, (path) => {
    assert.match(configError(() => loadControllerConfig({ config: path }, {})).message, /guestId/);
  });
  withFile("{ not json", (path) => {
    assert.match(configError(() => loadControllerConfig({ config: path }, {})).message, /not valid JSON/);
  });
});

test("the default controller id fits the id pattern whatever the host name", () => {
  assert.equal(defaultControllerId("node1.example.org", 42), "node1.example.org-42");
  assert.equal(defaultControllerId("_weird host!", 7), "weird-host--7");
  assert.equal(defaultControllerId("x".repeat(100), 123456).length, 64);
});
