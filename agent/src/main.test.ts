// The lull-agent binary as a real process: configuration errors, graceful shutdown that
// cancels running jobs, a second signal, and a kill -9 at a failpoint followed by recovery,
// with the real native engine on the dir driver.
import { strict as assert } from "node:assert";
import { spawn, type ChildProcess } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { after, describe, it } from "node:test";
import { Phase } from "@lull/proto";
import { createAgentClient } from "@lull/shared";
import { testApi, type LogLine } from "./testing/agent-harness.js";

const MAIN = fileURLToPath(new URL("./main.js", import.meta.url));
const dirs: string[] = [];
const children = new Set<ChildProcess>();
after(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  dirs.forEach((d) => rmSync(d, { recursive: true, force: true }));
});

function scratch(): { dir: string; app: string; config: Record<string, unknown> } {
  const dir = mkdtempSync(join(tmpdir(), "lull-main-"));
  dirs.push(dir);
  const app = join(dir, "app");
  mkdirSync(app);
  writeFileSync(join(app, "records.txt"), "x".repeat(4 * 1024 * 1024));
  return {
    dir,
    app,
    config: {
      node: "test-node",
      dataDir: join(dir, "data"),
      archiveDir: join(dir, "archives"),
      stagingDir: join(dir, "staging"),
      shutdownGraceMs: 3000,
      guests: [{ id: "demo", driver: "dir", snapshot: "copy", volumes: [{ name: "data", path: app }] }],
    },
  };
}

interface AgentChild {
  proc: ChildProcess;
  logs: LogLine[];
  stderr: string[];
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  waitForLog(pred: (l: LogLine) => boolean, timeoutMs?: number): Promise<LogLine>;
}

function runAgent(args: string[], env: Record<string, string> = {}): AgentChild {
  const proc = spawn(process.execPath, [MAIN, ...args], { env: { PATH: process.env.PATH ?? "/usr/bin:/bin", ...env }, stdio: ["ignore", "pipe", "pipe"] });
  children.add(proc);
  const logs: LogLine[] = [];
  const stderr: string[] = [];
  const waiters = new Set<() => void>();
  createInterface({ input: proc.stdout! }).on("line", (line) => {
    try {
      logs.push(JSON.parse(line) as LogLine);
    } catch {
      return;
    }
    for (const w of [...waiters]) w();
  });
  createInterface({ input: proc.stderr! }).on("line", (line) => stderr.push(line));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    proc.on("exit", (code, signal) => {
      for (const w of [...waiters]) w();
      resolve({ code, signal });
    }),
  );
  // Generous: on a loaded machine the agent may take seconds to create its CA and start listening.
  const waitForLog = (pred: (l: LogLine) => boolean, timeoutMs = 30_000) =>
    new Promise<LogLine>((resolve, reject) => {
      const check = () => {
        const hit = logs.find(pred);
        if (hit) return done(() => resolve(hit));
        if (proc.exitCode !== null || proc.signalCode !== null) done(() => reject(new Error(`agent exited; stderr: ${stderr.join("\n")}`)));
      };
      const timer = setTimeout(() => done(() => reject(new Error(`no such log line within ${timeoutMs} ms; last: ${JSON.stringify(logs.slice(-3))}`))), timeoutMs);
      const done = (fn: () => void) => {
        clearTimeout(timer);
        waiters.delete(check);
        fn();
      };
      waiters.add(check);
      check();
    });
  return { proc, logs, stderr, exited, waitForLog };
}

async function startChild(configPath: string, env: Record<string, string> = {}) {
  // The network listener is TLS with tokens; the test talks to the agent as the local operator on its socket.
  const socket = join(dirname(configPath), "run", "agent.sock");
  const child = runAgent(["--config", configPath, "--listen", "127.0.0.1:0", "--socket", socket], env);
  const line = await child.waitForLog((l) => l.msg === "agent listening");
  assert.match(String(line.address), /^127\.0\.0\.1:\d+$/);
  assert.equal(line.socket, socket);
  const client = createAgentClient({ address: `unix://${socket}` });
  return { child, client, api: testApi(client) };
}

/** Entries of a directory; none when it does not exist (yet). */
function entries(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

function writeConfig(dir: string, config: Record<string, unknown>): string {
  const path = join(dir, "agent.json");
  writeFileSync(path, JSON.stringify(config));
  return path;
}

async function waitForPhase(api: ReturnType<typeof testApi>, jobId: string, phase: Phase, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const job = await api.getJob({ guestId: "demo", jobId });
    if (job.phase === phase) return job;
    if (Date.now() > deadline) assert.fail(`job stayed ${job.phase}, expected ${phase}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe("lull-agent binary", () => {
  it("exits 2 and names the key when the configuration or a flag is bad", async () => {
    const { dir, config } = scratch();
    const bad = writeConfig(dir, { ...config, guests: [{ id: "demo", driver: "nfs", volumes: [{ name: "data", path: "/srv" }] }] });
    const a = runAgent(["--config", bad]);
    assert.equal((await a.exited).code, 2);
    assert.match(a.stderr.join("\n"), /guests\.0\.driver/);

    const b = runAgent(["--config", bad, "--bogus"]);
    assert.equal((await b.exited).code, 2);
    assert.match(b.stderr.join("\n"), /--bogus/);

    const good = writeConfig(dir, config);
    const c = runAgent(["--config", good], { LULL_AGENT_FAILPOINT: "explode-in:archiving" });
    assert.equal((await c.exited).code, 2);
    assert.match(c.stderr.join("\n"), /failpoint/);
  });

  it("SIGTERM cancels a running job, which stays cancelled after a restart; a second signal exits at once", async () => {
    const { dir, config } = scratch();
    const path = writeConfig(dir, config);
    const first = await startChild(path);
    await first.api.registerStack({ guestId: "demo", stack: "web", controllerId: "c1", leaseTtlMs: 60_000 });
    const { job } = await first.api.startBackup({ guestId: "demo", quiesceTimeoutMs: 60_000 });
    await waitForPhase(first.api, job!.id, Phase.PHASE_QUIESCING);
    first.client.close();
    first.child.proc.kill("SIGTERM");
    assert.deepEqual(await first.child.exited, { code: 0, signal: null });
    assert.ok(first.child.logs.some((l) => l.msg === "job phase changed" && l.jobId === job!.id && l.from === "quiescing" && l.to === "cancelled"));

    const second = await startChild(path, { LULL_AGENT_FAILPOINT: "pause-in:quiescing" });
    const after = await second.api.getJob({ guestId: "demo", jobId: job!.id });
    assert.equal(after.phase, Phase.PHASE_CANCELLED);
    assert.equal(after.errorMessage, "agent shutting down");
    // A run held at a failpoint does not stop on SIGTERM; the second signal ends the process at once.
    const held = await second.api.startBackup({ guestId: "demo" });
    await second.child.waitForLog((l) => l.msg === "paused at failpoint" && l.phase === "quiescing");
    second.client.close();
    second.child.proc.kill("SIGTERM");
    await second.child.waitForLog((l) => l.msg === "agent stopping");
    const t0 = Date.now();
    second.child.proc.kill("SIGTERM");
    const exit = await second.child.exited;
    assert.equal(exit.code, 130);
    assert.ok(Date.now() - t0 < 2000, "exited at once");
    assert.ok(held.job);
  });

  it("kill -9 at the archiving failpoint: the restart settles the job and sweeps the staging copy (real native engine, dir driver)", async () => {
    const { dir, config } = scratch();
    const path = writeConfig(dir, config);
    const first = await startChild(path, { LULL_AGENT_FAILPOINT: "pause-in:archiving" });
    const { job } = await first.api.startBackup({ guestId: "demo" });
    const paused = await first.child.waitForLog((l) => l.msg === "paused at failpoint");
    assert.equal(paused.phase, "archiving");
    assert.ok(readdirSync(join(dir, "staging")).some((n) => n === `lull-${job!.id}`), "the staging copy exists at the crash");
    first.client.close();
    first.child.proc.kill("SIGKILL");
    await first.child.exited;

    const second = await startChild(path);
    try {
      const settled = await second.api.getJob({ guestId: "demo", jobId: job!.id });
      assert.equal(settled.phase, Phase.PHASE_FAILED);
      assert.equal(settled.failedIn, Phase.PHASE_ARCHIVING);
      assert.equal(settled.errorCode, "LULL_E_AGENT_RESTARTED");
      assert.deepEqual(entries(join(dir, "staging")).filter((n) => n.startsWith("lull-")), [], "staging swept");
      assert.deepEqual(entries(join(dir, "archives")).filter((n) => n.includes("partial")), [], "no partial archive left");
      assert.ok(second.child.logs.some((l) => l.msg === "swept leftover" && String(l.removed).includes(job!.id)));

      const next = await second.api.startBackup({ guestId: "demo" });
      const done = await waitForPhase(second.api, next.job!.id, Phase.PHASE_DONE);
      assert.ok(done.archiveBytes > 0);
      assert.ok(done.snapshotAt, "the dir driver's copy counts as the point-in-time copy");
    } finally {
      second.client.close();
      second.child.proc.kill("SIGTERM");
      await second.child.exited;
    }
  });
});
