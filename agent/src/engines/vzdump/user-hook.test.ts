// The operator's own vzdump hook (`script:` in /etc/vzdump.conf, or pve.hook.userScript): Lull's
// `--script` overrides it in vzdump, so Lull's hook chains it — every phase, the same arguments
// and environment — and its exit code is honoured where vzdump would honour it.
import assert from "node:assert/strict";
import { chmod, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, beforeEach, describe, it } from "node:test";
import { LullError, silentLogger, systemClock } from "@lull/shared";
import type { GuestConfig } from "../../config.js";
import { recordingHooks, startFakePveNode, type FakePveNode } from "../../pve/testing/fake-pve.js";
import { createVzdumpEngine } from "./engine.js";

let node: FakePveNode;
let userHook: string;
let userLog: string;

interface UserCall {
  args: string[];
  env: Record<string, string>;
}

/** An operator's hook: records argv and env, prints a line, exits FAIL_CODE in FAIL_PHASE (from a file beside it). */
async function writeUserHook(): Promise<void> {
  userHook = join(node.dir, "operator-hook.mjs");
  userLog = join(node.dir, "operator-hook.log");
  const failFile = join(node.dir, "operator-hook.fail");
  await writeFile(
    userHook,
    `#!${process.execPath}
import { appendFileSync, readFileSync } from "node:fs";
const args = process.argv.slice(2);
appendFileSync(${JSON.stringify(userLog)}, JSON.stringify({ args, env: process.env }) + "\\n");
console.log("operator hook " + args.join(" "));
let fail = "";
try { fail = readFileSync(${JSON.stringify(failFile)}, "utf8").trim(); } catch {}
const [phase, code] = fail.split(" ");
if (phase === args[0]) process.exit(Number(code));
`,
  );
  await chmod(userHook, 0o755);
}

async function userCalls(): Promise<UserCall[]> {
  const text = await readFile(userLog, "utf8").catch(() => "");
  return text.split("\n").filter(Boolean).map((l) => JSON.parse(l) as UserCall);
}

function run(hooks = recordingHooks()) {
  const pve = { ...node.config, vzdump: { ...node.config.vzdump, compress: "0" as const } };
  const engine = createVzdumpEngine({ pve, node: "pve1", runner: node.runner, launcher: node.launcher, hookServer: node.hookServer, hookScriptPath: node.hookScriptPath, clock: systemClock, log: silentLogger(), vzdumpEnv: node.env });
  return { hooks, done: engine.run({ jobId: "j-000000000000000000000hook1", guest: { id: "101", engine: "vzdump" } as unknown as GuestConfig, hooks, signal: new AbortController().signal, log: silentLogger() }) };
}

beforeEach(async () => {
  node = await startFakePveNode();
  node.pve.addContainer(101, { rootfs: { storage: "local-lvm", files: { "data/blob": Buffer.alloc(32 * 1024, 2) } } });
  await writeUserHook();
  node.pve.writeVzdumpConf({ script: userHook });
});
afterEach(async () => {
  await node.close();
});

describe("the operator's vzdump hook, chained by Lull's", () => {
  it("runs in every phase with vzdump's arguments and environment; its output reaches vzdump's log", async () => {
    const { hooks, done } = run();
    const result = await done;
    assert.ok(result.archiveBytes > 0);
    const calls = await userCalls();
    assert.deepEqual(
      calls.map((c) => c.args.join(" ")),
      ["job-init", "job-start", "backup-start snapshot 101", "pre-stop snapshot 101", "pre-restart snapshot 101", "post-restart snapshot 101", "backup-end snapshot 101", "log-end snapshot 101", "job-end"],
    );
    const end = calls.find((c) => c.args[0] === "backup-end")!;
    assert.equal(end.env.TARGET, result.archivePath);
    assert.equal(end.env.VMTYPE, "lxc");
    assert.equal(end.env.STOREID, "local");
    assert.equal(end.env.PATH, undefined, "the same wiped environment vzdump gives a hook");
    assert.ok(hooks.notes().includes("vzdump: INFO: operator hook backup-end snapshot 101"), hooks.notes().join("\n"));
  });

  it("its non-zero exit fails the guest where vzdump would (backup-start), and the job with vzdump's message", async () => {
    await writeFile(join(node.dir, "operator-hook.fail"), "backup-start 3");
    const { hooks, done } = run();
    await assert.rejects(done, (e: unknown) => {
      assert.ok(e instanceof LullError, String(e));
      assert.match(e.message, /^vzdump: Backup of VM 101 failed - command '.*vzdump-hook\.mjs backup-start snapshot 101' failed: exit code 3$/);
      return true;
    });
    assert.deepEqual(hooks.phases(), []);
    assert.equal(node.pve.guest(101)!.lock, undefined);
  });

  it("a job-init failure fails the whole vzdump job before any guest", async () => {
    await writeFile(join(node.dir, "operator-hook.fail"), "job-init 5");
    const { done } = run();
    await assert.rejects(done, (e: unknown) => e instanceof LullError && /job-init' failed: exit code 5/.test(e.message));
    assert.deepEqual((await userCalls()).map((c) => c.args[0]), ["job-init"]);
  });
});
