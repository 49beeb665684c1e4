// lull-controller as a real process: the command line, SIGTERM, and crash tests (kill -9 at each
// failpoint, restart, converge). The agent is the real one in-process (a cued engine), the stack a real process.
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { Phase, StackState } from "@lull/proto";
import { createFileMarkerStore, type MarkerStore } from "./marker-store.js";
import { ChildController } from "./testing/child-controller.js";
import { ControllerTestAgent } from "./testing/agent.js";
import { ProcessStack } from "./testing/process-stack.js";

const S = StackState;

interface World {
  dir: string;
  agent: ControllerTestAgent;
  stack: ProcessStack;
  markers: MarkerStore;
  config: Record<string, unknown>;
  children: ChildController[];
  start(env?: NodeJS.ProcessEnv): ChildController;
}

async function world(t: { after: (fn: () => Promise<void> | void) => void }): Promise<World> {
  const dir = mkdtempSync(join(tmpdir(), "lull-ctl-main-"));
  const agent = await ControllerTestAgent.start();
  const markerDir = join(dir, "markers");
  const markers = createFileMarkerStore(markerDir, "app");
  const stack = ProcessStack.create(markers.path);
  stack.startNow();
  stack.clearEvents();
  const config = {
    guestId: "demo",
    stack: "app",
    agent: { address: agent.address, callTimeoutMs: 1_000 },
    markerDir,
    resumeDeadlineMs: 20_000,
    pollIntervalMs: 100,
    leaseTtlMs: 3_000,
    driver: stack.driverConfig(),
    logLevel: "debug",
  };
  const w: World = {
    dir,
    agent,
    stack,
    markers,
    config,
    children: [],
    start(env = {}) {
      const child = ChildController.withConfig(dir, config, env);
      w.children.push(child);
      return child;
    },
  };
  t.after(async () => {
    for (const c of w.children) await c.kill9();
    await agent.stop();
    stack.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });
  return w;
}

test("a bad config exits 2 with an error naming the key", async (t) => {
  const w = await world(t);
  const child = ChildController.withConfig(w.dir, { ...w.config, resumeDeadlineMs: "soon" });
  assert.equal((await child.exited).code, 2);
  assert.match(child.stderr.join("\n"), /LULL_E_CONFIG_INVALID: .*resumeDeadlineMs/);

  const noFile = new ChildController(["--config", join(w.dir, "missing.json")]);
  assert.equal((await noFile.exited).code, 2);
  assert.match(noFile.stderr.join("\n"), /cannot read config file/);

  const badFlag = new ChildController(["--frobnicate"]);
  assert.equal((await badFlag.exited).code, 2);
  assert.match(badFlag.stderr.join("\n"), /usage: lull-controller/);

  const configFile = join(w.dir, "good.json");
  writeFileSync(configFile, JSON.stringify(w.config));
  const flagLevel = new ChildController(["--config", configFile, "--log-level", "loud"]);
  assert.equal((await flagLevel.exited).code, 2);
  assert.match(flagLevel.stderr.join("\n"), /logLevel/);
});

test("an unreadable token file exits 2 naming the key, and still starts a stack a crash left stopped", async (t) => {
  const w = await world(t);
  w.stack.stopNow();
  w.markers.write({
    jobId: "j-0000000000000000000000000a",
    guestId: "demo",
    stack: "app",
    agent: w.agent.address,
    controllerId: "crashed-1",
    stoppedAt: Date.now() - 1_000,
    resumeDeadline: Date.now() + 60_000,
    resumeAt: Date.now() + 50_000,
  });
  const missing = join(w.dir, "no-such.token");
  const child = ChildController.withConfig(w.dir, { ...w.config, agent: { address: w.agent.address, tokenFile: missing, insecure: true } });
  assert.equal((await child.exited).code, 2);
  assert.match(child.stderr.join("\n"), /LULL_E_CONFIG_INVALID: .*agent\.tokenFile/);
  assert.equal(w.stack.isRunning(), true, "the stack the crash left stopped runs again");
  assert.equal(w.markers.read().kind, "none", "the marker is cleared");
});

test("a controller that cannot start still resumes a stack a crash left stopped through its quiescer: the post steps run too", async (t) => {
  const w = await world(t);
  w.stack.stopNow();
  w.markers.write({
    jobId: "j-0000000000000000000000000b",
    guestId: "demo",
    stack: "app",
    agent: w.agent.address,
    controllerId: "crashed-1",
    stoppedAt: Date.now() - 1_000,
    resumeDeadline: Date.now() + 60_000,
    resumeAt: Date.now() + 50_000,
  });
  const ran = join(w.dir, "post-ran");
  const post = [{ type: "command", name: "notify", argv: [process.execPath, "-e", `require("node:fs").writeFileSync(${JSON.stringify(ran)}, process.env.LULL_RESUME_CAUSE ?? "")`] }];
  const missing = join(w.dir, "no-such.token");
  const child = ChildController.withConfig(w.dir, { ...w.config, quiesce: { post }, agent: { address: w.agent.address, tokenFile: missing, insecure: true } });
  assert.equal((await child.exited).code, 2);
  assert.equal(w.stack.isRunning(), true);
  assert.equal(readFileSync(ran, "utf8"), "restarted", "the post step ran, told why");
  assert.equal(w.markers.read().kind, "none");
});

test("SIGTERM while holding the stack stopped: resumes it, unregisters, exits 0", async (t) => {
  const w = await world(t);
  const child = w.start();
  await child.waitForLog("stack registered");
  const job = await w.agent.createJob();
  await w.agent.to(job.id, Phase.PHASE_QUIESCING);
  await w.agent.waitForStack(job.id, "app", S.STACK_STATE_QUIESCED);
  assert.equal(w.stack.isRunning(), false);

  child.signal("SIGTERM");
  assert.deepEqual(await child.exited, { code: 0, signal: null });
  assert.equal(w.stack.isRunning(), true);
  assert.equal(w.markers.read().kind, "none");
  assert.equal(w.agent.logged("stack unregistered").length, 1, "unregistered");
  assert.equal((await w.agent.stack(job.id, "app"))?.state, S.STACK_STATE_RESUMED);
});

test("crash after the marker, before the stop: the restarted controller stops once and acknowledges", async (t) => {
  const w = await world(t);
  const first = w.start({ LULL_CONTROLLER_FAILPOINT: "after-marker" });
  await first.waitForLog("stack registered");
  const job = await w.agent.createJob();
  await w.agent.to(job.id, Phase.PHASE_QUIESCING);
  assert.equal((await first.waitForLog("paused at failpoint")).failpoint, "after-marker");
  first.signal("SIGTERM"); // frozen like a crash: no graceful shutdown, the default action kills it
  assert.deepEqual(await first.exited, { code: null, signal: "SIGTERM" });
  assert.equal(w.markers.read().kind, "present");
  assert.equal(w.stack.isRunning(), true, "not stopped yet");

  const second = w.start();
  await w.agent.waitForStack(job.id, "app", S.STACK_STATE_QUIESCED);
  assert.equal(w.stack.events().filter((e) => e.op === "stop").length, 1);
  await w.agent.to(job.id, Phase.PHASE_SNAPSHOTTED);
  await second.waitForLog("stack resumed", (l) => l.jobId === job.id);
  assert.equal(w.stack.isRunning(), true);
});

test("crash after the stop, before the acknowledgement: re-attach without a second stop", async (t) => {
  const w = await world(t);
  const first = w.start({ LULL_CONTROLLER_FAILPOINT: "after-stop" });
  await first.waitForLog("stack registered");
  const job = await w.agent.createJob();
  await w.agent.to(job.id, Phase.PHASE_QUIESCING);
  await first.waitForLog("paused at failpoint");
  await first.kill9();
  assert.equal(w.stack.isRunning(), false);
  assert.equal((await w.agent.stack(job.id, "app"))?.state, S.STACK_STATE_PENDING);

  const second = w.start();
  await w.agent.waitForStack(job.id, "app", S.STACK_STATE_QUIESCED);
  await second.waitForLog("re-attached: the stack is already stopped");
  assert.equal(w.stack.events().filter((e) => e.op === "stop").length, 1, "stopped only by the first controller");
  await w.agent.to(job.id, Phase.PHASE_SNAPSHOTTED);
  await w.agent.waitForStack(job.id, "app", S.STACK_STATE_RESUMED);
  assert.equal(w.stack.isRunning(), true);
});

test("crash after snapshotted, before the start: the restarted controller resumes at once (early)", async (t) => {
  const w = await world(t);
  const first = w.start({ LULL_CONTROLLER_FAILPOINT: "before-resume" });
  await first.waitForLog("stack registered");
  const job = await w.agent.createJob();
  await w.agent.to(job.id, Phase.PHASE_QUIESCING);
  await w.agent.waitForStack(job.id, "app", S.STACK_STATE_QUIESCED);
  await w.agent.to(job.id, Phase.PHASE_SNAPSHOTTED);
  await first.waitForLog("snapshotted — resuming app early");
  await first.waitForLog("paused at failpoint");
  await first.kill9();
  assert.equal(w.stack.isRunning(), false, "down after the crash");

  const second = w.start();
  const resumed = await second.waitForLog("stack resumed", (l) => l.jobId === job.id);
  assert.equal(resumed.early, true);
  assert.equal((await second.waitForLog("recovered")).outcome, "resumed");
  assert.equal(w.stack.isRunning(), true);
  await w.agent.to(job.id, Phase.PHASE_DONE);
  await second.waitForLog("backup done", (l) => l.jobId === job.id);
});
