// The native engine's per-guest archive and snapshot settings: zstd level and threads reach zstd
// (the agent-wide ones otherwise; -T0 by default), and a snapshot step that outlasts
// snapshotTimeoutMs fails the job with LULL_E_SNAPSHOT_TIMEOUT at the deadline even when its
// command ignores the kill, and the copy it makes late is released. Real tar and zstd, real cp.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { Consistency } from "@lull/proto";
import { createExecaRunner, LullError, silentLogger, type CommandRunner } from "@lull/shared";
import { zstdCreateArgs } from "../../archive/tar-zst.js";
import { jobId, testConfig } from "../../storage/testing/config.js";
import type { EngineHooks } from "../engine.js";
import { createNativeEngine } from "./engine.js";

const hooks = (): EngineHooks => ({
  quiesce: async () => Consistency.CONSISTENCY_APP,
  snapshotting: () => undefined,
  snapshotted: () => undefined,
  archiving: () => undefined,
  progress: () => undefined,
  note: () => undefined,
});

/** The execa runner, recording argv; `hold` keeps the matching command's result back until released (ignoring its signal). */
function runnerWith(hold?: (file: string, args: readonly string[]) => boolean) {
  const real = createExecaRunner();
  const calls: string[][] = [];
  let release: () => void = () => undefined;
  const released = new Promise<void>((r) => (release = r));
  const runner: CommandRunner = {
    async run(file, args, options) {
      calls.push([file, ...args]);
      if (hold?.(file, args)) {
        const { signal: _ignored, ...rest } = options ?? {};
        await released;
        return real.run(file, args, rest);
      }
      return real.run(file, args, options);
    },
  };
  return { runner, calls, release };
}

describe("native engine: compression and snapshot settings", () => {
  let root: string;
  before(async () => {
    root = await mkdtemp(join(tmpdir(), "lull-native-scale-"));
    await mkdir(join(root, "src"), { recursive: true });
    await writeFile(join(root, "src", "a.txt"), "hello ".repeat(10_000));
  });
  after(() => rm(root, { recursive: true, force: true }));

  it("zstd gets -T0 by default, the agent's level, and a guest's own level and threads when set", () => {
    assert.deepEqual(zstdCreateArgs(3, 0), ["-q", "-3", "-T0", "-c"]);
    assert.throws(() => zstdCreateArgs(0, 0), /zstdLevel 0/);
    assert.throws(() => zstdCreateArgs(3, -1), /zstdThreads -1/);
    const config = testConfig(root, [
      { id: "plain", driver: "dir", snapshot: "copy", volumes: [{ name: "data", path: join(root, "src") }] },
      { id: "tuned", driver: "dir", snapshot: "copy", zstdLevel: 9, zstdThreads: 1, volumes: [{ name: "data", path: join(root, "src") }] },
    ], { zstdLevel: 4 });
    assert.equal(config.zstdThreads, 0);
    assert.equal(config.snapshotTimeoutMs, 300_000);
    return (async () => {
      // A zstd first on PATH that records its argv, then runs the real one.
      const shim = join(root, "shim");
      await mkdir(shim, { recursive: true });
      const argvLog = join(root, "zstd-argv.log");
      const realZstd = execFileSync("sh", ["-c", "command -v zstd"], { encoding: "utf8" }).trim();
      await writeFile(join(shim, "zstd"), `#!/bin/sh\necho "$*" >> '${argvLog}'\nexec '${realZstd}' "$@"\n`, { mode: 0o755 });
      const path = process.env.PATH;
      process.env.PATH = `${shim}:${path}`;
      try {
        const engine = createNativeEngine({ config, runner: createExecaRunner(), log: silentLogger(), progressIntervalMs: 0 });
        for (const [i, guest] of config.guests.entries()) {
          const r = await engine.run({ jobId: jobId(10 + i), guest, hooks: hooks(), signal: new AbortController().signal, log: silentLogger() });
          assert.ok(existsSync(r.archivePath));
        }
      } finally {
        process.env.PATH = path;
      }
      assert.deepEqual((await readFile(argvLog, "utf8")).trim().split("\n"), ["-q -4 -T0 -c", "-q -9 -T1 -c"]);
    })();
  });

  it("a snapshot step past snapshotTimeoutMs fails with LULL_E_SNAPSHOT_TIMEOUT at the deadline; the late copy is released", async () => {
    const config = testConfig(root, [
      { id: "slow", driver: "dir", snapshot: "copy", snapshotTimeoutMs: 1000, volumes: [{ name: "data", path: join(root, "src") }] },
    ]);
    const { runner, release } = runnerWith((file) => file === "cp");
    const engine = createNativeEngine({ config, runner, log: silentLogger(), progressIntervalMs: 0 });
    const started = Date.now();
    const err = await engine
      .run({ jobId: jobId(20), guest: config.guests[0]!, hooks: hooks(), signal: new AbortController().signal, log: silentLogger() })
      .then(() => assert.fail("the backup should time out"), (e: unknown) => e);
    const took = Date.now() - started;
    assert.ok(err instanceof LullError);
    assert.equal(err.code, "LULL_E_SNAPSHOT_TIMEOUT");
    assert.match(err.message, /within 1000 ms \(snapshotTimeoutMs\)/);
    assert.ok(took >= 1000 && took < 5000, `failed at the deadline (${took} ms), not when the command gave up`);
    // The copy finishes after the job failed: it is removed, not left for the next sweep.
    release();
    const staging = config.stagingDir;
    for (let i = 0; i < 100 && existsSync(staging) && (await readdir(staging)).length > 0; i++) await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(existsSync(staging) ? await readdir(staging) : [], [], "the late copy was released");
  });
});
