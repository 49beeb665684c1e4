// The slow-command shim: found first on PATH, delays only the matching calls, passes argv, output
// and exit code through; and a pid-file daemon that starts detached, reports status, stops.
import assert from "node:assert/strict";
import { join } from "node:path";
import { test } from "node:test";
import { execa } from "execa";
import { runningDaemonPid, startDaemon, stopDaemon } from "./pid-daemon.js";
import { installSlowCommand } from "./slow-command.js";
import { makeTempDir, removeDir } from "./temp.js";

test("a slow-command shim delays only calls whose arguments match, and passes output and exit codes through", async () => {
  const dir = await makeTempDir("lull-slow-command-");
  try {
    const echo = await installSlowCommand({ binDir: join(dir, "bin"), command: "echo", delayMs: 1_500, whenArgsStartWith: ["slow"] });
    const fail = await installSlowCommand({ binDir: join(dir, "bin"), command: "false", delayMs: 0 });
    assert.notEqual(echo.realPath, echo.shimPath);
    const env = echo.env();
    const run = async (file: string, args: string[]) => {
      const started = Date.now();
      const r = await execa(file, args, { env, shell: false, reject: false, timeout: 20_000 });
      return { code: r.exitCode, stdout: String(r.stdout), ms: Date.now() - started };
    };
    const slow = await run("echo", ["slow", "a b"]);
    assert.deepEqual([slow.code, slow.stdout], [0, "slow a b"]);
    assert.ok(slow.ms >= 1_500, `the matching call waited (${slow.ms} ms)`);
    const fast = await run("echo", ["fast"]);
    assert.deepEqual([fast.code, fast.stdout], [0, "fast"]);
    assert.ok(fast.ms < 1_500, `the other call did not wait (${fast.ms} ms)`);
    assert.equal((await run("false", [])).code, 1);
  } finally {
    await removeDir(dir);
  }
});

test("a pid-file daemon starts detached once ready, shows as running, and stops on SIGTERM", async () => {
  const dir = await makeTempDir("lull-pid-daemon-");
  try {
    const pidFile = join(dir, "d.pid");
    const script = `require("fs").writeFileSync(${JSON.stringify(pidFile)}, process.pid + "\\n"); setInterval(() => {}, 1000);`;
    const daemon = { argv: [process.execPath, "-e", script, dir], pidFile, logFile: join(dir, "d.log"), cmdlineIncludes: [dir] };
    assert.equal(runningDaemonPid(daemon), undefined);
    const { pid, alreadyRunning } = await startDaemon(daemon, 10_000);
    assert.equal(alreadyRunning, false);
    assert.equal(runningDaemonPid(daemon), pid);
    assert.deepEqual(await startDaemon(daemon, 10_000), { pid, alreadyRunning: true });
    assert.equal(await stopDaemon(daemon, 10_000), pid);
    assert.equal(runningDaemonPid(daemon), undefined);
    assert.equal(await stopDaemon(daemon, 10_000), undefined);
    const broken = { ...daemon, argv: [process.execPath, "-e", "process.exit(3)", dir] };
    await assert.rejects(startDaemon(broken, 10_000), /exited \(3\) while starting/);
  } finally {
    await removeDir(dir);
  }
});
