import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { createExecaLauncher } from "./execa.js";
import type { LaunchOptions } from "./launcher.js";

const node = process.execPath;
const launcher = createExecaLauncher();

function launch(script: string, options: Partial<LaunchOptions> = {}, args: string[] = []) {
  const lines: string[] = [];
  const proc = launcher.launch(node, ["-e", script, ...args], {
    onLine: (line, stream) => lines.push(`${stream}:${line}`),
    stopGraceMs: 1_000,
    timeoutMs: 10_000,
    ...options,
  });
  return { proc, lines };
}

describe("execa launcher", () => {
  it("delivers every line as it arrives, per stream in order, before the exit resolves", async () => {
    const { proc, lines } = launch("console.log('a'); console.error('x'); process.stdout.write('b\\nc'); process.exit(4)");
    assert.ok(typeof proc.pid === "number");
    const exit = await proc.exit;
    assert.deepEqual(exit, { exitCode: 4, signal: undefined, cancelled: false, timedOut: false });
    assert.deepEqual(lines.filter((l) => l.startsWith("stdout:")), ["stdout:a", "stdout:b", "stdout:c"]);
    assert.deepEqual(lines.filter((l) => l.startsWith("stderr:")), ["stderr:x"]);
  });

  it("passes arguments verbatim, never through a shell, and adds env to the inherited one", async () => {
    const tricky = "$(id); `id` | rm -rf * ; 'x\"";
    const { proc, lines } = launch("console.log(process.argv[1], process.env.LULL_T, typeof process.env.PATH)", { env: { LULL_T: "yes" } }, [tricky]);
    await proc.exit;
    assert.deepEqual(lines, [`stdout:${tricky} yes string`]);
  });

  it("talks to a child on stdin and hands over raw output that does not end in a newline", async () => {
    const seen: string[] = [];
    const script = "process.stdin.setEncoding('utf8').on('data', (d) => process.stdout.write('> ' + d.trim().toUpperCase())).on('end', () => process.exit(0))";
    const proc = launcher.launch(node, ["-e", script], { stdin: true, onData: (text) => seen.push(text), stopGraceMs: 1_000 });
    proc.write("hello\n");
    for (let i = 0; i < 200 && seen.join("") !== "> HELLO"; i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(seen.join(""), "> HELLO");
    proc.endInput();
    assert.equal((await proc.exit).exitCode, 0);
  });

  it("an aborted signal stops the child: reported as cancelled, SIGKILL after the grace when SIGTERM is ignored", async () => {
    const abort = new AbortController();
    const { proc, lines } = launch("process.on('SIGTERM', () => console.log('term')); console.log('up'); setInterval(() => {}, 1000)", {
      signal: abort.signal,
      stopGraceMs: 300,
    });
    for (let i = 0; i < 200 && !lines.includes("stdout:up"); i++) await new Promise((r) => setTimeout(r, 10));
    const t0 = Date.now();
    abort.abort();
    const exit = await proc.exit;
    assert.equal(exit.cancelled, true);
    assert.equal(exit.signal, "SIGKILL");
    assert.ok(lines.includes("stdout:term"), "SIGTERM came first");
    assert.ok(Date.now() - t0 < 5_000);
  });

  it("a timeout stops the child and says so", async () => {
    const { proc } = launch("setInterval(() => {}, 1000)", { timeoutMs: 200 });
    const exit = await proc.exit;
    assert.equal(exit.timedOut, true);
    assert.equal(exit.cancelled, false);
    assert.equal(exit.exitCode, undefined);
  });

  it("kill ends a child that is still running, and is harmless after it exited", async () => {
    const { proc } = launch("setInterval(() => {}, 1000)", { timeoutMs: undefined });
    proc.kill();
    assert.equal((await proc.exit).signal, "SIGTERM");
    proc.kill();
  });

  it("a program that cannot start is a startError naming the reason, not a throw", async () => {
    const proc = launcher.launch("/nonexistent/lull-tool", ["x"], { stopGraceMs: 1_000, stdin: true });
    proc.write("ignored\n");
    const exit = await proc.exit;
    assert.equal(exit.startError, "spawn /nonexistent/lull-tool ENOENT");
    assert.equal(exit.exitCode, undefined);
    assert.equal(proc.pid, undefined);
  });
});
