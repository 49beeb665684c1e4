// strategy `pause` with the compose driver against the fake docker CLI (test/fakes/docker/docker):
// the project is paused during the quiesce (as `docker compose ps` shows it), unpaused after.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { Phase, StackState } from "@lull/proto";
import { LullError, systemClock } from "@lull/shared";
import { createComposeDriver } from "../stacks/compose.js";
import { pauseAndVerify, unpauseAndVerify } from "../stacks/driver.js";
import { fakeDockerPath } from "../testing/fake-docker.js";
import { quiesceHarness } from "../testing/quiesce-sandbox.js";

const fakeDocker = fakeDockerPath();

/** A fake docker state dir with project `app` (web + db running); the tests of this file run one after another. */
function setup(t: { after: (fn: () => void) => void }) {
  const state = mkdtempSync(join(tmpdir(), "lull-fake-docker-"));
  t.after(() => rmSync(state, { recursive: true, force: true }));
  mkdirSync(join(state, "projects"));
  writeFileSync(join(state, "projects", "app.json"), JSON.stringify({ services: { web: "running", db: "running" } }));
  process.env.LULL_FAKE_DOCKER_STATE = state;
  const driver = createComposeDriver({ project: "app", files: [], docker: fakeDocker, timeoutMs: 5_000, verifyTimeoutMs: 300 });
  const commands = () =>
    readFileSync(join(state, "calls.log"), "utf8")
      .trim()
      .split("\n")
      .map((l) => (JSON.parse(l) as string[]).slice(3).join(" "));
  /** `docker compose ps --all --format json` as a user would run it: service → [State, Status]. */
  const ps = () =>
    Object.fromEntries(
      execFileSync(fakeDocker, ["compose", "-p", "app", "ps", "--all", "--format", "json"], { encoding: "utf8" })
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l) as { Service: string; State: string; Status: string })
        .map((c) => [c.Service, [c.State, c.Status]]),
    );
  return { state, driver, commands, ps };
}

function dockerFails(args: string[]): string {
  try {
    execFileSync(fakeDocker, args, { encoding: "utf8", stdio: "pipe" });
  } catch (err) {
    return String((err as { stderr: string }).stderr).trim();
  }
  assert.fail(`docker ${args.join(" ")} should fail`);
}

test("compose pause / unpause: ps shows `paused` and `(Paused)`; start refuses a paused container like docker does", async (t) => {
  const { driver, ps } = setup(t);
  await pauseAndVerify(driver, systemClock);
  assert.equal(await driver.status(), "paused");
  const paused = ps();
  assert.equal(paused.web?.[0], "paused");
  assert.match(String(paused.db?.[1]), /^Up \d+ seconds \(Paused\)$/);
  assert.equal(dockerFails(["compose", "-p", "app", "start"]), "Error response from daemon: cannot start a paused container, try unpause instead");
  assert.match(dockerFails(["compose", "-p", "app", "pause"]), /^Error response from daemon: Container [0-9a-f]{64} is already paused$/);
  await unpauseAndVerify(driver, systemClock);
  assert.equal(await driver.status(), "running");
  assert.deepEqual(Object.values(ps()).map((s) => s[0]), ["running", "running"]);
});

test("a pause that fails half-way is LULL_E_STACK_STOP_FAILED with docker's error; unpause brings every service back", async (t) => {
  const { state, driver } = setup(t);
  writeFileSync(join(state, "fail-pause"), "db");
  await assert.rejects(pauseAndVerify(driver, systemClock), (err: unknown) => {
    assert.ok(err instanceof LullError);
    assert.equal(err.code, "LULL_E_STACK_STOP_FAILED");
    assert.match(err.message, /Cannot pause container [0-9a-f]+: OCI runtime pause failed: permission denied/);
    return true;
  });
  assert.equal(await driver.status(), "partial", "web paused, db still running");
  // compose's unpause fails on db ("is not paused") but thaws web: the stack runs, which is what counts.
  await unpauseAndVerify(driver, systemClock);
  assert.equal(await driver.status(), "running");
});

test("controller with strategy pause: paused while quiesced, unpaused at snapshotted; never stopped or started", async (t) => {
  const { commands, ps } = setup(t);
  const h = await quiesceHarness(
    { strategy: "pause" },
    { driverConfig: { type: "compose", project: "app", docker: fakeDocker, timeoutMs: 5_000, verifyTimeoutMs: 1_000 } },
  );
  t.after(() => h.cleanup());
  await h.startRegistered();
  const job = await h.agent.createJob();
  await h.agent.to(job.id, Phase.PHASE_QUIESCING);
  await h.agent.waitForStack(job.id, "app", StackState.STACK_STATE_QUIESCED);
  assert.deepEqual(Object.values(ps()).map((s) => s[0]), ["paused", "paused"], "paused while the snapshot is taken");
  assert.equal((await h.logs.waitFor("stack paused")).strategy, "pause");

  await h.agent.to(job.id, Phase.PHASE_SNAPSHOTTED);
  await h.agent.waitForStack(job.id, "app", StackState.STACK_STATE_RESUMED);
  assert.deepEqual(Object.values(ps()).map((s) => s[0]), ["running", "running"]);
  const ops = commands().filter((c) => !c.startsWith("ps"));
  assert.deepEqual(ops, ["pause", "unpause"]);
  const resumed = await h.logs.waitFor("stack resumed");
  assert.equal(resumed.strategy, "pause");
  assert.equal(resumed.early, true);
});
