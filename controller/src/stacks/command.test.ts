// The command driver against a real process (testing/process-stack-cli.js).
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { systemClock } from "@lull/shared";
import { ProcessStack } from "../testing/process-stack.js";
import { rejectsWith } from "../testing/rejects-with.js";
import { createCommandDriver } from "./command.js";
import { startAndVerify, stopAndVerify } from "./driver.js";

function setup(t: { after: (fn: () => void) => void }, verifyTimeoutMs = 1_000) {
  const stack = ProcessStack.create("/nonexistent/marker");
  t.after(() => stack.cleanup());
  const driver = createCommandDriver(stack.driverConfig({ timeoutMs: 5_000, verifyTimeoutMs }));
  return { stack, driver };
}

test("stop, status and start drive a real process", async (t) => {
  const { stack, driver } = setup(t);
  stack.startNow();
  assert.equal(await driver.status(), "running");
  const stopMs = await stopAndVerify(driver, systemClock);
  assert.ok(stopMs >= 0);
  assert.equal(stack.isRunning(), false);
  assert.equal(await driver.status(), "stopped");
  await startAndVerify(driver, systemClock);
  assert.equal(stack.isRunning(), true);
  await startAndVerify(driver, systemClock); // starting a running stack is fine
  assert.equal(stack.events().filter((e) => e.op === "start").length, 3);
});

test("a failing stop is LULL_E_STACK_STOP_FAILED with the command's stderr; the app keeps running", async (t) => {
  const { stack, driver } = setup(t);
  stack.startNow();
  stack.setFault("fail-stop");
  await rejectsWith(stopAndVerify(driver, systemClock), "LULL_E_STACK_STOP_FAILED", /exited 1: stop failed: injected fault/);
  assert.equal(stack.isRunning(), true);
});

test("a start whose app dies at once fails verification", async (t) => {
  const { stack, driver } = setup(t, 300);
  stack.setFault("start-dies");
  await rejectsWith(startAndVerify(driver, systemClock), "LULL_E_STACK_START_FAILED", /stopped, expected running/);
});

test("a command past its timeout is killed and reported", async (t) => {
  const stack = ProcessStack.create("/nonexistent/marker");
  t.after(() => stack.cleanup());
  const driver = createCommandDriver(stack.driverConfig({ timeoutMs: 300, verifyTimeoutMs: 0 }));
  stack.startNow();
  stack.setFault("slow-stop", "5000");
  const t0 = Date.now();
  await rejectsWith(stopAndVerify(driver, systemClock), "LULL_E_STACK_STOP_FAILED", /timed out after 300 ms/);
  assert.ok(Date.now() - t0 < 3_000, "bounded by the timeout");
});

test("an aborted stop is cancelled", async (t) => {
  const { stack, driver } = setup(t);
  stack.startNow();
  stack.setFault("slow-stop", "5000");
  const ac = new AbortController();
  setTimeout(() => ac.abort(), 100);
  await rejectsWith(stopAndVerify(driver, systemClock, ac.signal), "LULL_E_STACK_STOP_FAILED", /cancelled/);
  assert.equal(stack.isRunning(), true);
});

test("a missing binary is a clear error, not a crash", async () => {
  const driver = createCommandDriver({ start: ["/nonexistent/start"], stop: ["/nonexistent/stop"], status: ["/nonexistent/status"], timeoutMs: 1_000, verifyTimeoutMs: 0 });
  await rejectsWith(stopAndVerify(driver, systemClock), "LULL_E_STACK_STOP_FAILED", /nonexistent\/stop/);
  await rejectsWith(driver.status(), "LULL_E_COMMAND_FAILED", /nonexistent\/status/);
});

/** A status command that exits `code` after writing `stderr`. */
const exiting = (code: number, stderr = "") => [process.execPath, "-e", `process.stderr.write(${JSON.stringify(stderr)}); process.exit(${code})`];
const commandDriver = (status: string[]) =>
  createCommandDriver({ start: [process.execPath, "-e", ""], stop: [process.execPath, "-e", ""], status, timeoutMs: 5_000, verifyTimeoutMs: 0 });

test("status contract: exit 0 is running, exit 3 is stopped, any other exit is an unknown status carrying its stderr", async () => {
  assert.equal(await commandDriver(exiting(0)).status(), "running");
  assert.equal(await commandDriver(exiting(3)).status(), "stopped");
  for (const code of [1, 2, 4, 127]) {
    await rejectsWith(commandDriver(exiting(code, `boom ${code}\n`)).status(), "LULL_E_COMMAND_FAILED", new RegExp(`exited ${code}: the status is unknown \\(it must exit 0 for running or 3 for stopped\\): boom ${code}`));
  }
});

test("a status that pg_ctl refuses as root names the fix", async () => {
  const driver = commandDriver(exiting(1, "pg_ctl: cannot be run as root\nPlease log in (using, e.g., \"su\") as the (unprivileged) user that will\nown the server process.\n"));
  await rejectsWith(driver.status(), "LULL_E_COMMAND_FAILED", /pg_ctl: cannot be run as root.*pg_ctl refuses to run as root: run it as the cluster's owner, e\.g\. \["runuser", "-u", "postgres"/s);
});

test("a stop cannot be verified by a status that errs: the stop fails, it is never taken as stopped", async () => {
  await rejectsWith(stopAndVerify(commandDriver(exiting(1, "no idea\n")), systemClock), "LULL_E_STACK_STOP_FAILED", /status is unknown.*no idea/);
});

test("preflight: each command that cannot run is named by its key; a status that errs is reported; a good config has none", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "lull-preflight-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const plain = join(dir, "not-executable");
  writeFileSync(plain, "#!/bin/sh\n", { mode: 0o644 });
  const bad = createCommandDriver({
    start: ["/nonexistent/start"],
    stop: ["no-such-binary-lull-test"],
    status: exiting(1, "refused\n"),
    pause: [plain],
    timeoutMs: 5_000,
    verifyTimeoutMs: 0,
  });
  const problems = await bad.preflight!();
  assert.equal(problems.length, 4, problems.join("\n"));
  assert.match(problems[0]!, /^driver\.start cannot run: \/nonexistent\/start does not exist$/);
  assert.match(problems[1]!, /^driver\.stop cannot run: no-such-binary-lull-test is not found on PATH/);
  assert.equal(problems[2], `driver.pause cannot run: ${plain} is not an executable file`);
  assert.match(problems[3]!, /^driver\.status cannot tell whether the stack runs: .*exited 1: the status is unknown.*refused$/);
  assert.deepEqual(bad.missing!(), problems.slice(0, 3));
  assert.deepEqual(await commandDriver(exiting(3)).preflight!(), []);
  assert.deepEqual(await createCommandDriver({ start: ["node", "-e", ""], stop: ["true"], status: ["true"], timeoutMs: 5_000, verifyTimeoutMs: 0 }).preflight!(), [], "names on PATH resolve");
});
