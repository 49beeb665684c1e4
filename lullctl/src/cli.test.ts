// The real `lullctl` executable as a child process, against the real agent: exit codes and streams a script would see.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { after, test } from "node:test";
import { startLullctlAgent, type LullctlAgent } from "./testing/agent.js";

const MAIN = fileURLToPath(new URL("./main.js", import.meta.url));
const agents: LullctlAgent[] = [];
after(async () => {
  for (const a of agents) await a.stop();
});

function lullctl(argv: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [MAIN, ...argv], { env: { PATH: process.env.PATH ?? "", ...env }, timeout: 30_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === "number" ? err.code : -1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

test("lullctl exits 0 on a finished backup, 2 on a usage error, 1 on an agent error", async () => {
  const agent = await startLullctlAgent();
  agents.push(agent);
  const ok = await lullctl(["backup", "demo", "--wait"], { LULL_AGENT: agent.address });
  assert.equal(ok.code, 0, ok.stderr);
  assert.match(ok.stdout, /^\s+\+\d+\.\d{3}s  done$/m);
  assert.match(ok.stdout, /^consistency  app/m);

  const usage = await lullctl(["backup"]);
  assert.equal(usage.code, 2);
  assert.match(usage.stderr, /^lullctl: LULL_E_INVALID_ARGUMENT: backup: missing <guest>$/m);
  assert.equal(usage.stdout, "");

  const failed = await lullctl(["--agent", agent.address, "job", "demo", "j-zzzzzzzzzzzzzzzzzzzzzzzzzz"]);
  assert.equal(failed.code, 1);
  assert.equal(failed.stderr, "lullctl: LULL_E_JOB_NOT_FOUND: guest demo has no job j-zzzzzzzzzzzzzzzzzzzzzzzzzz\n");

  const help = await lullctl(["--help"]);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /^usage: lullctl \[--socket PATH \| --agent ADDR\] \[--json\] <command>/);
});
