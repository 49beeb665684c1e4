// The controller with quiesce steps against the real agent in-process (a cued engine) and a real process
// stack: what the agent is told (refusal reason, post_step) and that the stack always runs again.
import assert from "node:assert/strict";
import { test } from "node:test";
import { Phase, SnapshotMode, StackState } from "@lull/proto";
import { makeSandbox, quiesceHarness, type Sandbox } from "../testing/quiesce-sandbox.js";

const S = StackState;

const session = (sb: Sandbox, name: string, behaviour?: "normal" | "fail-start") => ({
  type: "session" as const,
  name,
  argv: sb.sessionClient(name, behaviour),
  start: "START",
  ready: "^READY$",
  stop: "STOP",
  done: "^DONE$",
  timeoutMs: 3_000,
  stopTimeoutMs: 3_000,
});

const first = (sb: Sandbox) => sb.entries().map((l) => l.split(" ")[0]);

test("stop with a session and a post step: held through the snapshot, then started, session ended, post run, post_step reported", async (t) => {
  const sb = makeSandbox(t);
  const h = await quiesceHarness({ strategy: "stop", pre: [session(sb, "db")], post: [{ type: "command", name: "notify", argv: sb.append("notify") }] });
  t.after(() => h.cleanup());
  await h.startRegistered();
  const job = await h.agent.createJob();
  await h.agent.to(job.id, Phase.PHASE_QUIESCING);
  await h.agent.waitForStack(job.id, "app", S.STACK_STATE_QUIESCED);
  assert.equal(h.stack.isRunning(), false);
  assert.deepEqual(first(sb), ["db:start"], "the session is open, nothing ended yet");
  const stopped = await h.logs.waitFor("stack stopped");
  assert.equal(stopped.strategy, "stop");
  assert.equal(typeof stopped.preMs, "number");

  await h.agent.to(job.id, Phase.PHASE_SNAPSHOTTED);
  await h.agent.waitForStack(job.id, "app", S.STACK_STATE_RESUMED);
  assert.equal(h.stack.isRunning(), true);
  assert.deepEqual(first(sb), ["db:start", "db:stop", "db:eof", "notify"]);
  const report = h.agent.faults.callsOf("reportResumed")[0]?.request as { postStep?: string; early: boolean };
  assert.match(report.postStep ?? "", /^ok: db \(\d+ ms\), notify \(\d+ ms\)$/);
  assert.equal(report.early, true);
  const resumed = await h.logs.waitFor("stack resumed");
  assert.equal(resumed.postStep, report.postStep);
  assert.equal(resumed.strategy, "stop");
});

test("a failing pre step: the quiesce is refused with the reason and the post outcome; post ran; the stack never stopped", async (t) => {
  const sb = makeSandbox(t);
  const h = await quiesceHarness({
    pre: [session(sb, "db", "fail-start"), { type: "command", name: "never", argv: sb.append("never") }],
    post: [{ type: "command", name: "notify", argv: sb.append("notify") }],
  });
  t.after(() => h.cleanup());
  await h.startRegistered();
  const job = await h.agent.createJob();
  await h.agent.to(job.id, Phase.PHASE_QUIESCING);
  await h.agent.waitForStack(job.id, "app", S.STACK_STATE_REFUSED);
  const reason = (await h.agent.stack(job.id, "app"))?.reason ?? "";
  assert.match(reason, /^pre step db failed: the session ended before it was ready \(.*FATAL: database "nope" does not exist\); post steps: ok: notify \(\d+ ms\)$/);
  assert.deepEqual(first(sb), ["notify"]);
  assert.equal(h.stack.isRunning(), true);
  assert.equal(h.stack.events().filter((e) => e.op === "stop").length, 0, "never stopped");
  assert.equal(h.markers.read().kind, "none");
  assert.equal((await h.logs.waitFor("stack resumed")).cause, "pre-failed");
  await h.agent.to(job.id, Phase.PHASE_FAILED);
  await h.logs.waitFor("backup done", (l) => l.jobId === job.id);
});

test("a failing stop after the pre steps: the sessions end, post runs, refused, the stack runs", async (t) => {
  const sb = makeSandbox(t);
  const h = await quiesceHarness({ pre: [session(sb, "db")], post: [{ type: "command", name: "notify", argv: sb.append("notify") }] });
  t.after(() => h.cleanup());
  await h.startRegistered();
  h.stack.setFault("fail-stop");
  const job = await h.agent.createJob();
  await h.agent.to(job.id, Phase.PHASE_QUIESCING);
  await h.agent.waitForStack(job.id, "app", S.STACK_STATE_REFUSED);
  assert.match((await h.agent.stack(job.id, "app"))?.reason ?? "", /stop failed: injected fault.*; post steps: ok: db \(\d+ ms\), notify/);
  assert.deepEqual(first(sb), ["db:start", "db:stop", "db:eof", "notify"]);
  assert.equal(h.stack.isRunning(), true);
});

test("no snapshot (mode none): held to the end, then the post steps; the deadline also runs them when the agent is gone", async (t) => {
  const sb = makeSandbox(t);
  const h = await quiesceHarness({ pre: [session(sb, "db")], post: [{ type: "command", name: "notify", argv: sb.append("notify") }] }, { resumeDeadlineMs: 4_000 });
  t.after(() => h.cleanup());
  await h.startRegistered();
  const job = await h.agent.createJob({ mode: SnapshotMode.SNAPSHOT_MODE_NONE });
  await h.agent.to(job.id, Phase.PHASE_QUIESCING);
  await h.agent.waitForStack(job.id, "app", S.STACK_STATE_QUIESCED);
  await h.agent.kill();
  const resumed = await h.logs.waitFor("stack resumed", () => true, 10_000);
  assert.equal(resumed.cause, "deadline");
  assert.match(String(resumed.postStep), /^ok: db \(\d+ ms\), notify/);
  assert.deepEqual(first(sb), ["db:start", "db:stop", "db:eof", "notify"]);
  assert.equal(h.stack.isRunning(), true);
});

test("restarted during the quiesce with pre steps: not re-run — resumed, post run, refused (its effect is unknown)", async (t) => {
  const sb = makeSandbox(t);
  const h = await quiesceHarness({ pre: [session(sb, "db")], post: [{ type: "command", name: "notify", argv: sb.append("notify") }] }, { stackRunning: false });
  t.after(() => h.cleanup());
  const job = await h.agent.seedJob({ phase: Phase.PHASE_QUIESCING, app: S.STACK_STATE_PENDING });
  h.seedMarker(job.id, { deadlineInMs: 20_000 });
  h.start();
  await h.agent.waitForStack(job.id, "app", S.STACK_STATE_REFUSED);
  assert.match(
    (await h.agent.stack(job.id, "app"))?.reason ?? "",
    /^the controller restarted during the quiesce: .*; post steps: failed: db: not ended by this process: .*; ok: notify/,
  );
  assert.equal(h.stack.isRunning(), true, "started");
  assert.deepEqual(first(sb), ["notify"], "the pre session was not re-opened; the post step ran");
  assert.equal((await h.logs.waitFor("recovered")).outcome, "resumed");
});

test("restarted after the acknowledgement: held to the snapshot, then post run; the lost session is reported in post_step", async (t) => {
  const sb = makeSandbox(t);
  const h = await quiesceHarness({ pre: [session(sb, "db")], post: [{ type: "command", name: "notify", argv: sb.append("notify") }] }, { stackRunning: false });
  t.after(() => h.cleanup());
  const job = await h.agent.seedJob({ phase: Phase.PHASE_SNAPSHOTTING, app: S.STACK_STATE_QUIESCED });
  h.seedMarker(job.id, { deadlineInMs: 20_000 });
  h.start();
  assert.equal((await h.logs.waitFor("recovered")).outcome, "holding");
  await h.agent.to(job.id, Phase.PHASE_SNAPSHOTTED);
  await h.agent.waitForStack(job.id, "app", S.STACK_STATE_RESUMED);
  const report = h.agent.faults.callsOf("reportResumed")[0]?.request as { postStep?: string };
  assert.match(report.postStep ?? "", /^failed: db: not ended by this process: the session of the previous controller process ended with it .*; ok: notify/);
  assert.equal(h.stack.isRunning(), true);
});
