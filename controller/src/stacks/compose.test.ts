// The compose driver against the fake docker CLI (test/fakes/docker/docker, named by $LULL_FAKE_DOCKER).
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { systemClock } from "@lull/shared";
import { rejectsWith } from "../testing/rejects-with.js";
import { createComposeDriver, parseComposePs } from "./compose.js";
import { startAndVerify, stopAndVerify } from "./driver.js";
import { fakeDockerPath } from "../testing/fake-docker.js";

const fakeDocker = fakeDockerPath();

/** A fake docker state dir with project `app` (web + db running). The driver's commands inherit the environment. */
function setup(t: { after: (fn: () => void) => void }, files: string[] = []) {
  const state = mkdtempSync(join(tmpdir(), "lull-fake-docker-"));
  t.after(() => rmSync(state, { recursive: true, force: true }));
  mkdirSync(join(state, "projects"));
  writeFileSync(join(state, "projects", "app.json"), JSON.stringify({ services: { web: "running", db: "running" } }));
  process.env.LULL_FAKE_DOCKER_STATE = state; // tests of this file run one after another
  const driver = createComposeDriver({ project: "app", files, docker: fakeDocker, timeoutMs: 5_000, verifyTimeoutMs: 300 });
  const calls = () => readFileSync(join(state, "calls.log"), "utf8").trim().split("\n").map((l) => JSON.parse(l) as string[]);
  const project = () => JSON.parse(readFileSync(join(state, "projects", "app.json"), "utf8")).services as Record<string, { state: string }>;
  return { state, driver, calls, project };
}

test("stop, ps and start a compose project", async (t) => {
  const { driver, calls, project } = setup(t);
  assert.equal(await driver.status(), "running");
  await stopAndVerify(driver, systemClock);
  assert.deepEqual(Object.values(project()).map((s) => s.state), ["exited", "exited"]);
  assert.equal(await driver.status(), "stopped");
  await startAndVerify(driver, systemClock);
  assert.equal(await driver.status(), "running");
  const argvs = calls();
  assert.deepEqual(argvs[0], ["compose", "--project-name", "app", "ps", "--all", "--format", "json"]);
  assert.ok(argvs.some((a) => a.join(" ") === "compose --project-name app stop"));
  assert.ok(argvs.some((a) => a.join(" ") === "compose --project-name app start"));
});

test("--file arguments are passed for every command", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "lull-compose-file-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, "compose.yaml");
  writeFileSync(file, "services:\n  web:\n    image: nginx\n");
  const { driver, calls } = setup(t, [file]);
  await stopAndVerify(driver, systemClock);
  assert.deepEqual(calls().at(0)?.slice(0, 5), ["compose", "--project-name", "app", "--file", file]);
});

test("a failing stop is LULL_E_STACK_STOP_FAILED with docker's error; partial state is visible", async (t) => {
  const { state, driver } = setup(t);
  writeFileSync(join(state, "fail-stop"), "web");
  await rejectsWith(stopAndVerify(driver, systemClock), "LULL_E_STACK_STOP_FAILED", /cannot stop container: app-web-1: permission denied/);
  assert.equal(await driver.status(), "partial", "db stopped before web failed");
  await startAndVerify(driver, systemClock);
  assert.equal(await driver.status(), "running");
});

test("a service that exits right after start fails the up-check", async (t) => {
  const { state, driver } = setup(t);
  await stopAndVerify(driver, systemClock);
  writeFileSync(join(state, "start-exits"), "db");
  await rejectsWith(startAndVerify(driver, systemClock), "LULL_E_STACK_START_FAILED", /partial, expected running/);
});

test("a failing start and an unknown project are reported with docker's message", async (t) => {
  const { state, driver } = setup(t);
  await stopAndVerify(driver, systemClock);
  writeFileSync(join(state, "fail-start"), "");
  await rejectsWith(startAndVerify(driver, systemClock), "LULL_E_STACK_START_FAILED", /port is already allocated/);
  const other = createComposeDriver({ project: "nope", files: [], docker: fakeDocker, timeoutMs: 5_000, verifyTimeoutMs: 0 });
  await rejectsWith(other.status(), "LULL_E_COMMAND_FAILED", /no configuration file provided: not found/);
});

test("ps output: NDJSON and the older JSON array both parse", () => {
  const line = (s: string, st: string) => JSON.stringify({ Name: `app-${s}-1`, Service: s, State: st, Status: "", Project: "app" });
  assert.equal(parseComposePs(`${line("web", "running")}\n${line("db", "exited")}\n`).length, 2);
  assert.equal(parseComposePs(`[${line("web", "running")}]`)[0]?.Service, "web");
  assert.deepEqual(parseComposePs(""), []);
  assert.throws(() => parseComposePs('{"foo":1}'), /unexpected docker compose ps output/);
});
