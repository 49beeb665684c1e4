import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { LullError } from "../errors.js";
import { formatArgv } from "./argv.js";
import { createExecaRunner } from "./execa.js";
import { rejection } from "../testing/rejection.js";

const node = process.execPath;


describe("execa runner", () => {
  const runner = createExecaRunner();

  it("returns stdout, stderr and exit code 0", async () => {
    const result = await runner.run(node, ["-e", "console.log('out'); console.error('err')"], { timeoutMs: 10_000 });
    assert.deepEqual(result, { exitCode: 0, stdout: "out\n", stderr: "err\n" });
  });

  it("passes arguments verbatim, never through a shell", async () => {
    const tricky = "$(touch /tmp/lull-pwned); `id` | rm -rf * ; 'x\"";
    const result = await runner.run(node, ["-e", "process.stdout.write(process.argv[1])", tricky], { timeoutMs: 10_000 });
    assert.equal(result.stdout, tricky);
  });

  it("a non-zero exit throws LULL_E_COMMAND_FAILED naming argv, exit code and the last stderr lines", async () => {
    const script = "for (let i = 1; i <= 8; i++) console.error('line ' + i); process.exit(3)";
    const err = await rejection(runner.run(node, ["-e", script], { timeoutMs: 10_000 }));
    assert.equal(err.code, "LULL_E_COMMAND_FAILED");
    assert.ok(err.message.includes(formatArgv(node, ["-e", script])), err.message);
    assert.match(err.message, /exited with code 3/);
    assert.match(err.message, /line 4 \| line 5 \| line 6 \| line 7 \| line 8$/);
    assert.doesNotMatch(err.message, /line 3/);
  });

  it("reject: false returns the non-zero exit instead of throwing", async () => {
    const result = await runner.run(node, ["-e", "console.error('nope'); process.exit(2)"], { reject: false, timeoutMs: 10_000 });
    assert.equal(result.exitCode, 2);
    assert.equal(result.stderr, "nope\n");
  });

  it("a missing program is LULL_E_COMMAND_FAILED even with reject: false", async () => {
    const err = await rejection(runner.run("/nonexistent/lull-tool", ["x"], { reject: false, timeoutMs: 10_000 }));
    assert.equal(err.code, "LULL_E_COMMAND_FAILED");
    assert.match(err.message, /\/nonexistent\/lull-tool x failed/);
  });

  it("a timeout kills the command and says so", async () => {
    const started = Date.now();
    const err = await rejection(runner.run(node, ["-e", "setTimeout(() => {}, 60000)"], { timeoutMs: 300 }));
    assert.equal(err.code, "LULL_E_COMMAND_FAILED");
    assert.match(err.message, /timed out after 300 ms/);
    assert.ok(Date.now() - started < 10_000);
  });

  it("an aborted signal kills the command: LULL_E_CANCELLED", async () => {
    const abort = new AbortController();
    setTimeout(() => abort.abort(), 200);
    const err = await rejection(
      runner.run(node, ["-e", "setTimeout(() => {}, 60000)"], { signal: abort.signal, timeoutMs: 30_000 }),
    );
    assert.equal(err.code, "LULL_E_CANCELLED");
    const before = await rejection(runner.run(node, ["-e", "0"], { signal: abort.signal, timeoutMs: 30_000 }));
    assert.equal(before.code, "LULL_E_CANCELLED");
  });

  it("feeds input on stdin and honours env and cwd", async () => {
    const script = "let s='';process.stdin.on('data',d=>s+=d).on('end',()=>console.log(s.trim(), process.env.LULL_T, process.cwd()))";
    const result = await runner.run(node, ["-e", script], { input: "hello", env: { LULL_T: "yes" }, cwd: "/", timeoutMs: 10_000 });
    assert.equal(result.stdout, "hello yes /\n");
  });
});

describe("execa runner stop grace", () => {
  it("a child that ignores SIGTERM on timeout is killed after stopGraceMs", async () => {
    const runner = createExecaRunner();
    const started = Date.now();
    const script = "process.on('SIGTERM', () => {}); setInterval(() => {}, 1000)";
    await assert.rejects(runner.run(node, ["-e", script], { timeoutMs: 200, stopGraceMs: 300 }), (err: unknown) => {
      assert.ok(err instanceof LullError);
      assert.equal(err.code, "LULL_E_COMMAND_FAILED");
      assert.match(err.message, /timed out after 200 ms/);
      return true;
    });
    assert.ok(Date.now() - started < 4_000, "not the default 5 s grace");
  });
});
