// The quiescer on its own: real commands and a real session client as steps, a recording driver.
// What is asserted is the order things happened in (one journal file) and what the user is told.
import assert from "node:assert/strict";
import { test } from "node:test";
import { systemClock, z } from "@lull/shared";
import { LogCapture } from "../testing/log-capture.js";
import { rejectsWith } from "../testing/rejects-with.js";
import { Quiescer } from "./quiescer.js";
import { quiesceSchema } from "./schema.js";
import { RecordingDriver, clientPid, isAlive, makeSandbox, type Sandbox } from "../testing/quiesce-sandbox.js";

const JOB = "j-00000000000000000000000001";

function setup(sb: Sandbox, quiesce: z.input<typeof quiesceSchema>) {
  const driver = new RecordingDriver(sb.journal);
  const logs = new LogCapture();
  const quiescer = new Quiescer({ config: quiesceSchema.parse(quiesce), driver, stack: "app", clock: systemClock, log: logs.log });
  return { driver, logs, quiescer };
}

const session = (sb: Sandbox, name: string, behaviour?: "normal" | "never-ready" | "fail-start", timeoutMs = 3_000) => ({
  type: "session" as const,
  name,
  argv: sb.sessionClient(name, behaviour),
  start: "START",
  ready: "^READY$",
  stop: "STOP",
  done: "^DONE$",
  timeoutMs,
  stopTimeoutMs: 3_000,
});

const first = (sb: Sandbox) => sb.entries().map((l) => l.split(" ")[0]);

test("order: pre steps in order, stop, then start, sessions ended last-first, post steps in order", async (t) => {
  const sb = makeSandbox(t);
  const { quiescer, logs } = setup(sb, {
    strategy: "stop",
    pre: [{ type: "command", name: "flush", argv: sb.append("flush") }, session(sb, "s1"), session(sb, "s2")],
    post: [
      { type: "command", name: "notify", argv: sb.append("notify") },
      { type: "command", name: "verify", argv: sb.append("verify") },
    ],
  });
  const held = await quiescer.quiesce(JOB);
  assert.equal(quiescer.heldFor(JOB), held);
  assert.deepEqual(first(sb), ["flush", "s1:start", "s2:start", "driver:stop"]);
  const result = await quiescer.resume(JOB, "snapshotted");
  assert.equal(result.ok, true);
  assert.deepEqual(first(sb), ["flush", "s1:start", "s2:start", "driver:stop", "driver:start", "s2:stop", "s2:eof", "s1:stop", "s1:eof", "notify", "verify"]);
  assert.match(result.postStep ?? "", /^ok: s2 \(\d+ ms\), s1 \(\d+ ms\), notify \(\d+ ms\), verify \(\d+ ms\)$/);
  assert.ok(sb.entries().includes(`flush pre ${JOB}`), "pre commands see LULL_HOOK and LULL_JOB_ID");
  assert.ok(sb.entries().includes(`notify post ${JOB}`));
  assert.equal(quiescer.heldFor(JOB), undefined, "released");
  // One log line per step with its duration.
  const done = logs.find("quiesce step done");
  assert.deepEqual(done.map((l) => `${l.hook}/${l.step}`), ["pre/flush", "pre/s1", "pre/s2", "session-end/s2", "session-end/s1", "post/notify", "post/verify"]);
  assert.ok(done.every((l) => typeof l.durationMs === "number"));
});

test("a failed pre step ends the quiesce: the stack is not touched, open sessions end, post runs", async (t) => {
  const sb = makeSandbox(t);
  const { quiescer, driver, logs } = setup(sb, {
    pre: [session(sb, "db"), { type: "command", name: "flush", argv: sb.append("flush", 3, "flush: disk full") }, { type: "command", name: "never", argv: sb.append("never") }],
    post: [{ type: "command", name: "notify", argv: sb.append("notify") }],
  });
  await rejectsWith(quiescer.quiesce(JOB), "LULL_E_COMMAND_FAILED", /^pre step flush failed: .* exited 3: flush: disk full$/);
  assert.equal(driver.state, "running");
  const result = await quiescer.resume(JOB, "pre-failed");
  assert.equal(result.ok, true);
  assert.equal(result.startMs, null, "nothing to release: the stack was never stopped");
  assert.deepEqual(first(sb), ["db:start", "flush", "db:stop", "db:eof", "notify"]);
  assert.match(result.postStep ?? "", /^ok: db \(\d+ ms\), notify \(\d+ ms\)$/);
  const failed = logs.find("quiesce step failed")[0];
  assert.equal(failed?.step, "flush");
  assert.equal(failed?.hook, "pre");
});

test("a pre command past its timeout is killed, the quiesce fails in time, post still runs", async (t) => {
  const sb = makeSandbox(t);
  const { quiescer, driver } = setup(sb, {
    pre: [{ type: "command", name: "slow", argv: sb.sleep(5_000, "slow-finished"), timeoutMs: 300 }],
    post: [{ type: "command", name: "undo", argv: sb.append("undo") }],
  });
  const t0 = Date.now();
  await rejectsWith(quiescer.quiesce(JOB), "LULL_E_COMMAND_FAILED", /pre step slow failed: .*timed out after 300 ms/);
  assert.ok(Date.now() - t0 < 3_000, "bounded by the step's timeout");
  const result = await quiescer.resume(JOB, "pre-failed");
  assert.deepEqual(first(sb), ["undo"], "the post step ran although the pre step never finished");
  assert.equal(driver.state, "running");
  assert.match(result.postStep ?? "", /^ok: undo/);
});

test("a session that is never ready times out: its client is killed, post runs", async (t) => {
  const sb = makeSandbox(t);
  const { quiescer } = setup(sb, { strategy: "hooks", pre: [session(sb, "db", "never-ready", 2_000)], post: [{ type: "command", name: "unlock", argv: sb.append("unlock") }] });
  await rejectsWith(quiescer.quiesce(JOB), "LULL_E_COMMAND_FAILED", /pre step db failed: the session was not ready after 2000 ms/);
  const pid = clientPid(sb, "db");
  assert.ok(pid !== undefined && !isAlive(pid), "the half-open session's client is gone");
  const result = await quiescer.resume(JOB, "pre-failed");
  assert.deepEqual(first(sb), ["db:start", "unlock"], "db took effect (its start ran) and was not ended by a stop: the kill closed it");
  assert.match(result.postStep ?? "", /^ok: unlock/);
});

test("a session whose client fails at start reports the client's stderr", async (t) => {
  const sb = makeSandbox(t);
  const { quiescer } = setup(sb, { strategy: "hooks", pre: [session(sb, "db", "fail-start")] });
  await rejectsWith(quiescer.quiesce(JOB), "LULL_E_COMMAND_FAILED", /pre step db failed: the session ended before it was ready \(.*exit 2: FATAL: database "nope" does not exist\)/);
  const result = await quiescer.resume(JOB, "pre-failed");
  assert.equal(result.postStep, undefined, "no session opened, no post steps: nothing to report");
});

test("a session client that cannot be spawned fails the step with the reason", async (t) => {
  const sb = makeSandbox(t);
  const { quiescer } = setup(sb, { strategy: "hooks", pre: [{ ...session(sb, "db"), argv: ["/nonexistent/psql", "-d", "app"] }] });
  await rejectsWith(quiescer.quiesce(JOB), "LULL_E_COMMAND_FAILED", /^pre step db failed: the session ended before it was ready \(\/nonexistent\/psql: spawn \/nonexistent\/psql ENOENT\)$/);
});

test("a session that dies while held is logged at once and reported failed at resume; post still runs", async (t) => {
  const sb = makeSandbox(t);
  const { quiescer, logs } = setup(sb, { strategy: "hooks", pre: [session(sb, "db")], post: [{ type: "command", name: "notify", argv: sb.append("notify") }] });
  await quiescer.quiesce(JOB);
  const pid = clientPid(sb, "db");
  assert.ok(pid !== undefined);
  process.kill(pid, "SIGKILL");
  const early = await logs.waitFor("quiesce session ended early");
  assert.equal(early.step, "db");
  assert.equal(early.signal, "SIGKILL");
  const result = await quiescer.resume(JOB, "snapshotted");
  assert.equal(result.ok, true);
  assert.match(result.postStep ?? "", /^failed: db: the session ended before resume \(.*killed by SIGKILL\); ok: notify \(\d+ ms\)$/);
  assert.deepEqual(first(sb), ["db:start", "notify"]);
});

test("a resume whose start fails runs the post steps once; the retry only starts the stack", async (t) => {
  const sb = makeSandbox(t);
  const { quiescer, driver } = setup(sb, { pre: [session(sb, "db")], post: [{ type: "command", name: "notify", argv: sb.append("notify") }] });
  await quiescer.quiesce(JOB);
  driver.failStarts = 1;
  const failed = await quiescer.resume(JOB, "snapshotted");
  assert.equal(failed.ok, false);
  assert.match(failed.error ?? "", /start failed: injected/);
  assert.match(failed.postStep ?? "", /^ok: db/);
  const retried = await quiescer.resume(JOB, "snapshotted");
  assert.equal(retried.ok, true);
  assert.equal(retried.postStep, failed.postStep);
  assert.deepEqual(first(sb), ["db:start", "driver:stop", "driver:start", "db:stop", "db:eof", "notify", "driver:start"]);
});

test("resuming a quiesce of an earlier process: sessions are reported lost, post runs, the stack is started", async (t) => {
  const sb = makeSandbox(t);
  const { quiescer, driver, logs } = setup(sb, { pre: [session(sb, "db")], post: [{ type: "command", name: "notify", argv: sb.append("notify") }] });
  driver.state = "stopped";
  const result = await quiescer.resume(JOB, "deadline");
  assert.equal(result.ok, true);
  assert.equal(driver.state, "running");
  assert.deepEqual(first(sb), ["driver:start", "notify"]);
  assert.match(result.postStep ?? "", /^failed: db: not ended by this process: the session of the previous controller process ended with it .*; ok: notify/);
  assert.equal(logs.find("quiesce session lost with the previous controller process").length, 1);
});

test("pause: the stack is paused, then unpaused; hooks: the stack is not touched", async (t) => {
  const sb = makeSandbox(t);
  const paused = setup(sb, { strategy: "pause" });
  assert.equal(paused.quiescer.heldStatus, "paused");
  await paused.quiescer.quiesce(JOB);
  assert.equal(paused.driver.state, "paused");
  assert.equal((await paused.quiescer.resume(JOB, "snapshotted")).ok, true);
  assert.equal(paused.driver.state, "running");
  assert.deepEqual(first(sb), ["driver:pause", "driver:unpause"]);

  const sb2 = makeSandbox(t);
  const hooks = setup(sb2, { strategy: "hooks", pre: [{ type: "command", argv: sb2.append("pre") }] });
  assert.equal(hooks.quiescer.heldStatus, undefined);
  await hooks.quiescer.quiesce(JOB);
  const result = await hooks.quiescer.resume(JOB, "snapshotted");
  assert.equal(result.startMs, 0);
  assert.deepEqual(first(sb2), ["pre"], "no driver call");
});

test("an aborted quiesce cancels the running session step and kills its client", async (t) => {
  const sb = makeSandbox(t);
  const { quiescer } = setup(sb, { strategy: "hooks", pre: [session(sb, "db", "never-ready", 10_000)] });
  const ac = new AbortController();
  const quiescing = quiescer.quiesce(JOB, ac.signal);
  // Abort once the client runs (it wrote its pid and took the "lock").
  for (let i = 0; i < 200 && !first(sb).includes("db:start"); i++) await new Promise((r) => setTimeout(r, 25));
  ac.abort();
  await rejectsWith(quiescing, "LULL_E_CANCELLED", /pre step db failed: the session was cancelled before it was ready/);
  const pid = clientPid(sb, "db");
  assert.ok(pid !== undefined && !isAlive(pid));
});
