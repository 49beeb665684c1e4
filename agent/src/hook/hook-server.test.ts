import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, rm, stat } from "node:fs/promises";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { after, before, describe, it } from "node:test";
import { silentLogger } from "@lull/shared";
import { HOOK_PROTOCOL_VERSION, type HookMessage, type HookReply } from "./hook-protocol.js";
import { HookServer, type HookSession } from "./hook-server.js";
import { hookLauncherSource, installHookLauncher } from "./hook-install.js";
import { runHookCli } from "./lull-vzdump-hook.js";

let dir: string;
let server: HookServer;
let foreign: HookMessage[];
let foreignSession: HookSession | undefined;

function recorder(reply: (m: HookMessage) => HookReply | Promise<HookReply> = () => ({ ok: true }), pid?: number) {
  const seen: HookMessage[] = [];
  const session: HookSession = {
    pid,
    handle: (m) => {
      seen.push(m);
      return reply(m);
    },
  };
  return { session, seen };
}

function msg(phase: HookMessage["phase"], vmid: number | undefined, pids: number[]): HookMessage {
  const m: HookMessage = { v: HOOK_PROTOCOL_VERSION, phase, env: {}, pids };
  if (vmid !== undefined) {
    m.vmid = vmid;
    m.mode = "snapshot";
  }
  return m;
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "lull-hook-"));
  foreign = [];
  server = new HookServer({
    socketPath: join(dir, "run", "hook.sock"),
    log: silentLogger(),
    onForeignBackup: (m) => {
      foreign.push(m);
      return foreignSession;
    },
  });
  await server.start();
});
after(async () => {
  await server.close();
  await rm(dir, { recursive: true, force: true });
});

describe("hook server and hook", () => {
  it("listens on an owner-only socket in an owner-only directory", async () => {
    assert.equal((await stat(server.socketPath)).mode & 0o777, 0o600);
    assert.equal((await stat(join(dir, "run"))).mode & 0o777, 0o700);
  });

  it("pre-stop: the hook waits for the session; ok → exit 0, refusal → exit 1 with the reason printed", async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const { session, seen } = recorder(async () => {
      await gate;
      return { ok: true, message: "stacks of guest 101 quiesced" };
    });
    const detach = server.attach(101, session);
    const printed: string[] = [];
    const env = { VMTYPE: "lxc", HOSTNAME: "web01", TARGET: "/var/lib/vz/dump/x.tar.zst", PATH: "/usr/bin", SECRET: "no" };
    const running = runHookCli(["pre-stop", "snapshot", "101"], { socketPath: server.socketPath, env, print: (l) => printed.push(l) });
    const early = await Promise.race([running.then(() => "done"), new Promise((r) => setTimeout(() => r("waiting"), 150))]);
    assert.equal(early, "waiting", "pre-stop blocks until the session answers");
    release();
    assert.equal(await running, 0);
    assert.deepEqual(printed, ["stacks of guest 101 quiesced"]);
    assert.deepEqual(seen[0]!.env, { VMTYPE: "lxc", HOSTNAME: "web01", TARGET: "/var/lib/vz/dump/x.tar.zst" }, "only vzdump's variables are sent");
    assert.equal(seen[0]!.vmid, 101);
    detach();

    const refusing = recorder(() => ({ ok: false, reason: "stack db refused: migration running" }));
    const detach2 = server.attach(101, refusing.session);
    const out: string[] = [];
    assert.equal(await runHookCli(["pre-stop", "snapshot", "101"], { socketPath: server.socketPath, env: {}, print: (l) => out.push(l) }), 1);
    assert.deepEqual(out, ["backup vetoed: stack db refused: migration running"]);
    detach2();
  });

  it("pre-stop without an answer in time vetoes; other phases never fail, even when the session throws", async () => {
    const silent = recorder(() => new Promise<HookReply>(() => undefined));
    const detach = server.attach(102, silent.session);
    const out: string[] = [];
    assert.equal(await runHookCli(["pre-stop", "snapshot", "102"], { socketPath: server.socketPath, env: {}, preStopTimeoutMs: 200, print: (l) => out.push(l) }), 1);
    assert.match(out[0]!, /^backup vetoed: no answer from the agent within 0s$/);
    detach();
    const throwing = recorder(() => {
      throw new Error("boom");
    });
    const detach2 = server.attach(103, throwing.session);
    for (const phase of ["backup-start", "pre-restart", "post-restart", "backup-end", "log-end"]) {
      assert.equal(await runHookCli([phase, "snapshot", "103"], { socketPath: server.socketPath, env: {}, print: () => undefined }), 0, phase);
    }
    const reply = await server.dispatch(msg("pre-stop", 103, [1]));
    assert.deepEqual(reply, { ok: false, reason: "boom" });
    detach2();
  });

  it("goes on (exit 0) when the agent is not running, and ignores phases it does not know", async () => {
    const out: string[] = [];
    assert.equal(await runHookCli(["pre-stop", "snapshot", "101"], { socketPath: join(dir, "nope.sock"), env: {}, print: (l) => out.push(l) }), 0);
    assert.match(out[0]!, /agent not reachable at .*nope\.sock \(ENOENT\): going on without quiescing/);
    assert.equal(await runHookCli(["some-future-phase"], { socketPath: join(dir, "nope.sock"), env: {}, print: () => undefined }), 0);
  });

  it("routes by the vzdump process among the hook's ancestors", async () => {
    const a = recorder(() => ({ ok: true, message: "a" }), 4001);
    const b = recorder(() => ({ ok: true, message: "b" }), 4002);
    const da = server.attach(110, a.session);
    const db = server.attach(110, b.session);
    assert.equal((await server.dispatch(msg("pre-restart", 110, [9000, 4002, 1]))).message, "b");
    assert.equal((await server.dispatch(msg("pre-restart", 110, [9001, 4001]))).message, "a");
    assert.equal((await server.dispatch(msg("job-end", undefined, [4001]))).message, "a");
    da();
    db();
  });

  it("hands a backup-start nobody claims to onForeignBackup and follows that run until log-end", async () => {
    foreign.length = 0;
    const followed = recorder();
    foreignSession = followed.session;
    await server.dispatch(msg("backup-start", 120, [7000, 6999]));
    await server.dispatch(msg("pre-stop", 120, [7000, 6999]));
    await server.dispatch(msg("log-end", 120, [7000, 6999]));
    await server.dispatch(msg("pre-stop", 120, [7100]));
    assert.deepEqual(foreign.map((m) => [m.phase, m.vmid]), [["backup-start", 120]]);
    assert.deepEqual(followed.seen.map((m) => m.phase), ["backup-start", "pre-stop", "log-end"]);
    foreignSession = undefined;
  });

  it("answers an invalid message with ok:false and keeps serving", async () => {
    const reply = await new Promise<string>((resolve) => {
      const s = connect(server.socketPath);
      let buf = "";
      s.on("connect", () => s.write('{"v":1,"phase":"pre-stop","env":{"PATH":"/bin"},"pids":[1],"mode":"snapshot","vmid":101}\n'));
      s.setEncoding("utf8").on("data", (d: string) => (buf += d));
      s.on("close", () => resolve(buf));
    });
    assert.deepEqual(JSON.parse(reply), { ok: false, reason: "invalid message" });
  });

  it("installs a launcher that runs without PATH and reaches the server", async () => {
    const scriptPath = join(dir, "lib", "vzdump-hook.mjs");
    await installHookLauncher({ scriptPath, socketPath: server.socketPath, preStopTimeoutMs: 5000, replyTimeoutMs: 1000 });
    assert.equal((await stat(scriptPath)).mode & 0o777, 0o700);
    assert.ok(hookLauncherSource({ scriptPath, socketPath: "/s", preStopTimeoutMs: 1, replyTimeoutMs: 1 }).startsWith(`#!${process.execPath}\n`));
    const { session, seen } = recorder(() => ({ ok: true, message: "quiesced" }));
    const detach = server.attach(130, session);
    const { stdout } = await promisify(execFile)(scriptPath, ["pre-stop", "stop", "130"], { env: { VMTYPE: "qemu", LC_ALL: "C" } });
    assert.equal(stdout, "lull: quiesced\n");
    assert.equal(seen[0]!.mode, "stop");
    assert.deepEqual(seen[0]!.env, { VMTYPE: "qemu" });
    detach();
    await assert.rejects(installHookLauncher({ scriptPath: join(dir, "hook.sh"), socketPath: "/s", preStopTimeoutMs: 1, replyTimeoutMs: 1 }), /must end in \.mjs/);
  });
});
