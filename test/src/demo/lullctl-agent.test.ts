// lullctl against the real lull-agent (child processes, loopback gRPC, dir driver): a watcher that
// tails events across an agent crash sees every persisted event exactly once, and `backup --wait`
// of a job the crash killed ends with the job's honest outcome.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, test } from "node:test";
import {
  ENTRY_POINTS,
  lullctlSummary,
  makeTempDir,
  removeDir,
  startAgent,
  startProcess,
  waitFor,
  type AgentProcess,
  type ManagedProcess,
} from "../support/index.js";

function lullctl(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [ENTRY_POINTS.lullctl, ...args], { timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === "number" ? err.code : -1) : 0, stdout, stderr });
    });
  });
}

let scratch: string;
let agent: AgentProcess;
let follower: ManagedProcess | undefined;

before(async () => {
  scratch = await makeTempDir("lull-lullctl-e2e-");
  const data = join(scratch, "data");
  await mkdir(data);
  await writeFile(join(data, "hello.txt"), "hello\n");
  agent = await startAgent({
    dir: join(scratch, "agent"),
    guests: [{ id: "demo", driver: "dir", snapshot: "copy", volumes: [{ name: "data", path: data }] }],
    config: { quiesce: { timeoutMs: 5_000, policy: "fail" } },
  });
});

after(async () => {
  await follower?.stop(5_000);
  await agent?.stop();
  await removeDir(scratch);
});

const doneOf = (jobId: string) => (l: Record<string, unknown>) => l.jobId === jobId && l.kind === "phase" && l.phase === "done";

test("events --follow misses nothing and repeats nothing across an agent kill -9; backup --wait reports the crash", async () => {
  follower = startProcess({ name: "lullctl-events", args: [ENTRY_POINTS.lullctl, "--socket", agent.socketPath, "--json", "events", "--follow"] });

  const first = await lullctl(["--socket", agent.socketPath, "--json", "backup", "demo", "--wait"]);
  assert.equal(first.code, 0, first.stderr);
  const job1 = lullctlSummary(first.stdout).job;
  assert.equal(job1.phase, "done");
  await follower.waitForLog(doneOf(job1.id), 15_000);

  // A job that the agent dies in: paused in archiving by a failpoint, then kill -9.
  await agent.restart({ env: { ...process.env, LULL_AGENT_FAILPOINT: "pause-in:archiving" } });
  const waiting = startProcess({ name: "lullctl-backup", args: [ENTRY_POINTS.lullctl, "--socket", agent.socketPath, "backup", "demo", "--wait"] });
  await waitFor("lullctl to show archiving", () => waiting.plainLines.some((l) => /\+\d+\.\d{3}s  archiving/.test(l)), 20_000);
  await agent.kill9();
  await agent.restart({ env: { ...process.env } });
  const exit = await waiting.waitForExit(30_000);
  assert.equal(exit.code, 1, waiting.tail());
  assert.ok(waiting.stderrLines.some((l) => /^lullctl: LULL_E_AGENT_RESTARTED: /.test(l)), waiting.tail());
  assert.ok(waiting.stderrLines.some((l) => /lost the agent's event stream/.test(l)), waiting.tail());
  assert.ok(waiting.plainLines.some((l) => /\+\d+\.\d{3}s  failed/.test(l)), waiting.tail());

  const third = await lullctl(["--socket", agent.socketPath, "--json", "backup", "demo", "--wait"]);
  assert.equal(third.code, 0, third.stderr);
  const job3 = lullctlSummary(third.stdout).job;
  await follower.waitForLog(doneOf(job3.id), 20_000);

  const replay = await lullctl(["--socket", agent.socketPath, "--json", "events"]);
  assert.equal(replay.code, 0, replay.stderr);
  const persisted = replay.stdout.trim().split("\n").map((l) => JSON.parse(l).seq as number);
  const seen = follower.logs.map((l) => l.seq as number);
  assert.deepEqual(seen.slice(0, persisted.length), persisted, "the follower printed every persisted event once, in order");
  assert.ok(follower.stderrLines.some((l) => /event stream broken/.test(l)), "the follower noticed the crash");

  const jobs = await lullctl(["--socket", agent.socketPath, "jobs", "--guest", "demo"]);
  assert.equal(jobs.code, 0);
  assert.equal(jobs.stdout.trim().split("\n").length, 4, jobs.stdout);
  assert.match(jobs.stdout, /\sfailed\s.*LULL_E_AGENT_RESTARTED/);
});
