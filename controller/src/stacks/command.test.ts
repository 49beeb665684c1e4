// The command driver against a real process (testing/process-stack-cli.js).
import assert from "node:assert/strict";
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
