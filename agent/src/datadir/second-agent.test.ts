// Two lull-agent processes on one data directory (real processes, real SQLite, the real native
// engine on the dir driver, real tar): the second is refused before it touches anything — the first
// keeps answering on its socket, its running job, staging copy and partial archive survive, no new
// epoch is opened — and after the first is killed with SIGKILL the next agent starts at once on the
// stale lock. The first agent's archive is held open by a zstd that waits for a gate file.
import { strict as assert } from "node:assert";
import { spawn, type ChildProcess } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { after, describe, it } from "node:test";
import Database from "better-sqlite3";
import { Phase } from "@lull/proto";
import { createAgentClient } from "@lull/shared";
import { DATABASE_FILE } from "../agent.js";
import { testApi, type LogLine } from "../testing/agent-harness.js";

const MAIN = fileURLToPath(new URL("../main.js", import.meta.url));
const dirs: string[] = [];
const children = new Set<ChildProcess>();
const gates: string[] = [];
after(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  for (const gate of gates) writeFileSync(gate, ""); // lets a waiting zstd go on (and end: its pipes are gone)
  dirs.forEach((d) => rmSync(d, { recursive: true, force: true }));
});

/** A `zstd` first on PATH that waits until `gate` exists, then runs the real one. */
function gatedZstd(binDir: string, gate: string): void {
  mkdirSync(binDir, { recursive: true });
  const script = join(binDir, "zstd");
  const realPath = (process.env.PATH ?? "/usr/bin:/bin").split(":").filter((d) => d !== binDir).join(":");
  // Ends too when the test's dir is gone (the clean-up removes it right after opening the gate, and
  // an orphaned shim — its agent SIGKILLed — must not wait on forever).
  writeFileSync(script, `#!/bin/sh\nwhile [ ! -e '${gate}' ]; do [ -d '${dirname(gate)}' ] || exit 1; sleep 0.1; done\nPATH='${realPath}' exec zstd "$@"\n`);
  chmodSync(script, 0o755);
  gates.push(gate);
}

async function waitUntil(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) assert.fail(`not within ${timeoutMs} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

interface Child {
  proc: ChildProcess;
  logs: LogLine[];
  stderr: string[];
  exited: Promise<number | null>;
  waitForLog(pred: (l: LogLine) => boolean, timeoutMs?: number): Promise<LogLine>;
}

function runAgent(configPath: string, socket: string, env: Record<string, string> = {}): Child {
  const args = [MAIN, "--config", configPath, "--listen", "127.0.0.1:0", "--socket", socket];
  const proc = spawn(process.execPath, args, { env: { PATH: process.env.PATH ?? "/usr/bin:/bin", ...env }, stdio: ["ignore", "pipe", "pipe"] });
  children.add(proc);
  const logs: LogLine[] = [];
  const stderr: string[] = [];
  createInterface({ input: proc.stdout! }).on("line", (line) => {
    try {
      logs.push(JSON.parse(line) as LogLine);
    } catch {
      // not a log line
    }
  });
  createInterface({ input: proc.stderr! }).on("line", (line) => stderr.push(line));
  const exited = new Promise<number | null>((resolve) => proc.on("exit", (code) => resolve(code)));
  const waitForLog = async (pred: (l: LogLine) => boolean, timeoutMs = 20_000) => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const hit = logs.find(pred);
      if (hit) return hit;
      if (proc.exitCode !== null || proc.signalCode !== null) assert.fail(`agent exited; stderr: ${stderr.join("\n")}`);
      if (Date.now() > deadline) assert.fail(`no such log line within ${timeoutMs} ms; last: ${JSON.stringify(logs.slice(-3))}`);
      await new Promise((r) => setTimeout(r, 25));
    }
  };
  return { proc, logs, stderr, exited, waitForLog };
}

function epochsIn(dataDir: string): number {
  const db = new Database(join(dataDir, DATABASE_FILE), { readonly: true });
  try {
    return (db.prepare("SELECT COUNT(*) AS n FROM agent_epochs").get() as { n: number }).n;
  } finally {
    db.close();
  }
}

describe("one lull-agent per data dir", () => {
  it("a second agent is refused naming the dir and the holder's pid, and changes nothing; a SIGKILLed holder's lock does not block", async () => {
    const dir = mkdtempSync(join(tmpdir(), "lull-second-agent-"));
    dirs.push(dir);
    const app = join(dir, "app");
    mkdirSync(app);
    writeFileSync(join(app, "records.txt"), "x".repeat(1024 * 1024));
    const dataDir = join(dir, "data");
    const configPath = join(dir, "agent.json");
    writeFileSync(
      configPath,
      JSON.stringify({
        node: "test-node",
        dataDir,
        archiveDir: join(dir, "archives"),
        stagingDir: join(dir, "staging"),
        shutdownGraceMs: 3000,
        guests: [{ id: "demo", driver: "dir", snapshot: "copy", volumes: [{ name: "data", path: app }] }],
      }),
    );
    const socket = join(dir, "run", "agent.sock");
    const bin = join(dir, "bin");
    gatedZstd(bin, join(dir, "zstd-may-run"));

    const first = runAgent(configPath, socket, { PATH: `${bin}:${process.env.PATH ?? "/usr/bin:/bin"}` });
    await first.waitForLog((l) => l.msg === "agent listening");
    const client = createAgentClient({ address: `unix://${socket}` });
    const api = testApi(client);
    const { job } = await api.startBackup({ guestId: "demo" });
    const staging = `lull-${job!.id}`;
    const partial = join(dir, "archives", `lull-partial-${job!.id}.tar.zst`);
    await waitUntil("the job archives", async () => (await api.getJob({ guestId: "demo", jobId: job!.id })).phase === Phase.PHASE_ARCHIVING);
    await waitUntil("the partial archive exists", () => existsSync(partial));
    assert.ok(readdirSync(join(dir, "staging")).includes(staging), "the first agent's staging copy exists");
    const epochs = epochsIn(dataDir);

    // Same config, same socket: the worst case (a second systemd instance).
    const second = runAgent(configPath, socket);
    assert.equal(await second.exited, 1);
    const said = second.stderr.join("\n");
    assert.match(said, /LULL_E_DATA_DIR_LOCKED/);
    assert.ok(said.includes(`data dir ${dataDir}`), said);
    assert.ok(said.includes(`pid ${first.proc.pid}`), said);
    assert.ok(second.logs.some((l) => l.msg === "agent failed to start" && l.code === "LULL_E_DATA_DIR_LOCKED"));
    assert.ok(!second.logs.some((l) => l.msg === "agent starting" || l.msg === "swept leftover"), "it did not get as far as recovery");

    assert.equal((await api.getAgentInfo()).node, "test-node", "the first agent's socket still answers");
    assert.equal((await api.getJob({ guestId: "demo", jobId: job!.id })).phase, Phase.PHASE_ARCHIVING, "its job was not settled");
    assert.ok(readdirSync(join(dir, "staging")).includes(staging), "its staging copy survived");
    assert.ok(existsSync(partial), "its partial archive survived");
    assert.equal(epochsIn(dataDir), epochs, "no new epoch: the database was not opened for writing");

    client.close();
    first.proc.kill("SIGKILL");
    await first.exited;

    const third = runAgent(configPath, socket);
    try {
      await third.waitForLog((l) => l.msg === "agent listening");
      const restarted = createAgentClient({ address: `unix://${socket}` });
      const settled = await testApi(restarted).getJob({ guestId: "demo", jobId: job!.id });
      restarted.close();
      assert.equal(settled.phase, Phase.PHASE_FAILED);
      assert.equal(settled.errorCode, "LULL_E_AGENT_RESTARTED");
      assert.equal(existsSync(join(dir, "staging", staging)), false, "the restart swept the staging copy");
      assert.equal(existsSync(partial), false, "and the partial archive");
      assert.equal(third.logs.find((l) => l.msg === "agent starting")?.pid, third.proc.pid);
    } finally {
      third.proc.kill("SIGTERM");
      assert.equal(await third.exited, 0);
    }
  });
});
