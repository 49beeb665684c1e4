// End to end with real daemons: lull-agent (dir driver, copy), lull-controller (binary) whose stack is
// a real process and whose quiesce has a `postgres` session step (a throwaway real cluster) and a post
// command, and lullctl. The post steps' outcome travels controller → ReportResumed → the agent's job
// store → `lullctl job` / `backup --wait`; a pre step that fails refuses the quiesce with its reason.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { ProcessStack } from "@lull/controller/testing";
import { ENTRY_POINTS, lullctlSummary, makeTempDir, removeDir, requireAvailable, startAgent, startController, type AgentProcess, type ControllerProcess } from "../support/index.js";
import { postgresUnavailable, startPgCluster, type PgCluster } from "./pg-cluster.js";

function lullctl(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [ENTRY_POINTS.lullctl, ...args], { timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === "number" ? err.code : -1) : 0, stdout, stderr });
    });
  });
}

const unavailable = postgresUnavailable();

describe("post steps end to end (real agent, controller binary, lullctl, PostgreSQL)", () => {
  let scratch: string;
  let pg: PgCluster;
  let agent: AgentProcess;
  const controllers: ControllerProcess[] = [];
  const stacks: ProcessStack[] = [];

  before(async () => {
    requireAvailable("PostgreSQL (root, apt-get install postgresql)", unavailable);
    scratch = await makeTempDir("lull-post-e2e-");
    pg = await startPgCluster();
    const data = join(scratch, "data");
    await mkdir(data);
    await writeFile(join(data, "hello.txt"), "hello\n");
    agent = await startAgent({
      dir: join(scratch, "agent"),
      guests: [{ id: "demo", driver: "dir", snapshot: "copy", volumes: [{ name: "data", path: data }] }],
      config: { quiesce: { timeoutMs: 20_000, policy: "fail" } },
    });
  });
  after(async () => {
    for (const c of controllers) await c.stop(10_000).catch(() => undefined);
    for (const s of stacks) s.cleanup();
    await agent?.stop();
    await pg?.stop();
    if (scratch) await removeDir(scratch);
  });

  async function controllerWith(name: string, database: string): Promise<{ ctl: ControllerProcess; journal: string; stack: ProcessStack }> {
    const dir = join(scratch, name);
    await mkdir(dir);
    const journal = join(dir, "journal");
    const stack = ProcessStack.create(join(dir, "markers", "app.marker.json"));
    stacks.push(stack);
    stack.startNow();
    const notify = [process.execPath, "-e", `require("node:fs").appendFileSync(process.argv[1], "notify " + process.env.LULL_RESUME_CAUSE + "\\n")`, journal];
    const ctl = await startController({
      dir,
      guestId: "demo",
      stack: "app",
      agent,
      markerDir: join(dir, "markers"),
      driver: stack.driverConfig(),
      config: {
        quiesce: {
          strategy: "stop",
          pre: [{ type: "postgres", name: "pg", psql: pg.psqlArgv(database), label: "nightly", timeoutMs: 20_000 }],
          post: [{ type: "command", name: "notify", argv: notify }],
        },
      },
    });
    controllers.push(ctl);
    return { ctl, journal, stack };
  }

  it("the outcome of the post steps is stored with the job and shown by lullctl", async () => {
    const { ctl, journal, stack } = await controllerWith("ok", "postgres");
    const backup = await lullctl(["--socket", agent.socketPath, "backup", "demo", "--wait"]);
    assert.equal(backup.code, 0, backup.stderr + backup.stdout);
    assert.match(backup.stdout, /^post steps {3}app: ok: pg \(\d+ ms\), notify \(\d+ ms\)$/m, backup.stdout);

    const listed = await lullctl(["--socket", agent.socketPath, "--json", "jobs", "--guest", "demo", "--limit", "1"]);
    const jobId = JSON.parse(listed.stdout).jobs?.[0]?.id ?? JSON.parse(listed.stdout)[0]?.id;
    assert.match(String(jobId), /^j-/, listed.stdout);
    const shown = await lullctl(["--socket", agent.socketPath, "job", "demo", jobId]);
    assert.match(shown.stdout, /^ {2}post steps\s+ok: pg \(\d+ ms\), notify \(\d+ ms\)$/m, shown.stdout);
    const json = JSON.parse((await lullctl(["--socket", agent.socketPath, "--json", "job", "demo", jobId])).stdout);
    const app = (json.job ?? json).stacks.find((s: { stack: string }) => s.stack === "app");
    assert.equal(app.state, "resumed");
    assert.match(app.postStep, /^ok: pg/);
    assert.equal(await readFile(journal, "utf8"), "notify snapshotted\n");
    const ended = await ctl.proc.waitForLog((l) => l.msg === "quiesce step done" && l.hook === "session-end", 5_000);
    assert.equal(ended.label, `nightly ${jobId}`);
    assert.equal(stack.isRunning(), true);
    await ctl.stop(10_000);
  });

  it("a pre step against a missing database: the job fails with the refusal, which names the reason and the post outcome", async () => {
    const { journal, stack } = await controllerWith("nope", "nope");
    const backup = await lullctl(["--socket", agent.socketPath, "--json", "backup", "demo", "--wait"]);
    assert.equal(backup.code, 1, backup.stderr + backup.stdout);
    const job = lullctlSummary(backup.stdout).job;
    assert.equal(job.phase, "failed");
    const app = job.stacks.find((s: { stack: string }) => s.stack === "app");
    assert.equal(app.state, "refused");
    assert.match(app.reason, /^pre step pg failed: .*database "nope" does not exist.*; post steps: ok: notify \(\d+ ms\)$/);
    assert.equal(await readFile(journal, "utf8"), "notify pre-failed\n");
    assert.equal(stack.isRunning(), true);
    assert.equal(stack.events().filter((e) => e.op === "stop").length, 0);
  });
});

