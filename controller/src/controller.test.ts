// Component tests: a Controller against the real agent in-process (real SQLite, real gRPC; a cued
// engine the test drives through the phases) with a real process as its stack (command driver),
// timings short.
import assert from "node:assert/strict";
import { test } from "node:test";
import { Phase, SnapshotMode, StackState } from "@lull/proto";
import { waitUntil } from "@lull/agent/testing";
import { Harness } from "./testing/harness.js";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test("full loop: quiescing → marker → stop → ack → snapshotted → start → report early → done", async (t) => {
  const h = await Harness.create();
  t.after(() => h.cleanup());
  await h.startRegistered();

  const job = await h.agent.createJob();
  await h.agent.to(job.id, Phase.PHASE_QUIESCING);
  await h.agent.waitForStack(job.id, "app", StackState.STACK_STATE_QUIESCED);
  assert.equal(h.stack.isRunning(), false, "the stack is stopped once acknowledged");
  const stop = h.stack.events().find((e) => e.op === "stop");
  assert.ok(stop, "the stop command ran");
  assert.equal(stop.markerPresent, true, "the marker was on disk when the stop command ran");
  const marker = h.markers.read();
  assert.equal(marker.kind, "present");
  if (marker.kind === "present") {
    assert.equal(marker.marker.jobId, job.id);
    assert.equal(marker.marker.resumeDeadline - marker.marker.stoppedAt, 20_000);
  }

  await h.agent.to(job.id, Phase.PHASE_SNAPSHOTTING);
  await sleep(250);
  assert.equal(h.stack.isRunning(), false, "still stopped while snapshotting");

  const snapshottedAt = Date.now();
  await h.agent.to(job.id, Phase.PHASE_SNAPSHOTTED);
  await h.agent.waitForStack(job.id, "app", StackState.STACK_STATE_RESUMED);
  assert.equal(h.stack.isRunning(), true, "running again after snapshotted");
  assert.equal(h.markers.read().kind, "none", "marker cleared");

  const entry = await h.agent.stack(job.id, "app");
  assert.equal(entry?.resumedEarly, true);
  const quiescingLog = h.logs.find("quiescing")[0];
  assert.ok(quiescingLog && quiescingLog.jobId === job.id && typeof quiescingLog.at === "string");
  const resumed = await h.logs.waitFor("stack resumed");
  assert.equal(resumed.early, true);
  assert.equal(typeof resumed.stopMs, "number");
  assert.equal(typeof resumed.startMs, "number");
  const downtime = entry?.downtimeMs ?? -1;
  assert.equal(resumed.downtimeMs, downtime);
  assert.ok(downtime >= snapshottedAt - stop.at, `downtime ${downtime} ms covers stop → snapshotted (${snapshottedAt - stop.at} ms)`);
  assert.ok(downtime <= Date.now() - Date.parse(String(quiescingLog.at)) + 5, `downtime ${downtime} ms is not longer than the whole episode`);
  assert.ok(h.logs.find("snapshotted — resuming app early", (l) => l.jobId === job.id).length === 1);

  await h.agent.to(job.id, Phase.PHASE_ARCHIVING);
  const ended = await h.agent.to(job.id, Phase.PHASE_DONE);
  const done = await h.logs.waitFor("backup done", (l) => l.jobId === job.id);
  assert.equal(done.phase, "done");
  assert.equal(done.totalMs, ended.totalMs, "the job's total time, as the agent reports it");
  assert.equal(h.stack.events().filter((e) => e.op === "stop").length, 1, "stopped exactly once");
  assert.equal(h.stack.events().filter((e) => e.op === "start").length, 1, "started exactly once");
});

test("fallback: no snapshotted (mode none) → the stack stays down through archiving and resumes at the end", async (t) => {
  const h = await Harness.create();
  t.after(() => h.cleanup());
  await h.startRegistered();

  const job = await h.agent.createJob({ mode: SnapshotMode.SNAPSHOT_MODE_NONE });
  await h.agent.to(job.id, Phase.PHASE_QUIESCING);
  await h.agent.waitForStack(job.id, "app", StackState.STACK_STATE_QUIESCED);
  await h.agent.to(job.id, Phase.PHASE_ARCHIVING);
  await sleep(300);
  assert.equal(h.stack.isRunning(), false, "archiving in place: the stack must stay stopped");
  assert.equal(h.markers.read().kind, "present");

  await h.agent.to(job.id, Phase.PHASE_DONE);
  const resumed = await h.logs.waitFor("stack resumed", (l) => l.jobId === job.id);
  assert.equal(resumed.early, false);
  assert.equal(h.stack.isRunning(), true);
  assert.equal(h.markers.read().kind, "none");
  await h.logs.waitFor("backup done", (l) => l.jobId === job.id && l.phase === "done");
  assert.equal(h.logs.find("snapshotted — resuming app early").length, 0);
});

test("resume: end holds the stack through snapshotted and archiving, resumes at the terminal phase", async (t) => {
  const h = await Harness.create({ resume: "end" });
  t.after(() => h.cleanup());
  await h.startRegistered();

  const job = await h.agent.createJob();
  await h.agent.to(job.id, Phase.PHASE_QUIESCING);
  await h.agent.waitForStack(job.id, "app", StackState.STACK_STATE_QUIESCED);
  await h.agent.to(job.id, Phase.PHASE_SNAPSHOTTED);
  await h.agent.to(job.id, Phase.PHASE_ARCHIVING);
  await sleep(300);
  assert.equal(h.stack.isRunning(), false);
  await h.agent.to(job.id, Phase.PHASE_DONE);
  await h.agent.waitForStack(job.id, "app", StackState.STACK_STATE_RESUMED);
  assert.equal((await h.agent.stack(job.id, "app"))?.resumedEarly, false);
  assert.equal(h.stack.isRunning(), true);
});

test("a failure after snapshotted is still logged once the job ends", async (t) => {
  const h = await Harness.create();
  t.after(() => h.cleanup());
  await h.startRegistered();

  const job = await h.agent.createJob();
  await h.agent.to(job.id, Phase.PHASE_QUIESCING);
  await h.agent.waitForStack(job.id, "app", StackState.STACK_STATE_QUIESCED);
  await h.agent.to(job.id, Phase.PHASE_SNAPSHOTTED);
  await h.agent.waitForStack(job.id, "app", StackState.STACK_STATE_RESUMED);
  await h.agent.to(job.id, Phase.PHASE_ARCHIVING);
  await h.agent.to(job.id, Phase.PHASE_FAILED, { errorCode: "LULL_E_NO_SPACE", errorMessage: "disk full" });
  const done = await h.logs.waitFor("backup done", (l) => l.jobId === job.id);
  assert.equal(done.phase, "failed");
  assert.equal(done.level, "warn");
  assert.equal(done.errorCode, "LULL_E_NO_SPACE");
  assert.equal(done.failedIn, "archiving");
  assert.equal(h.stack.isRunning(), true, "the stack keeps running");
});

test("stop fails → the stack runs again, the quiesce is refused with the reason, the marker is cleared", async (t) => {
  const h = await Harness.create();
  t.after(() => h.cleanup());
  await h.startRegistered();
  h.stack.setFault("fail-stop");

  const job = await h.agent.createJob();
  await h.agent.to(job.id, Phase.PHASE_QUIESCING);
  await h.agent.waitForStack(job.id, "app", StackState.STACK_STATE_REFUSED);
  const entry = await h.agent.stack(job.id, "app");
  assert.match(entry?.reason ?? "", /stop failed: injected fault/);
  assert.equal(h.stack.isRunning(), true);
  assert.equal(h.markers.read().kind, "none");
  assert.ok(h.stack.events().some((e) => e.op === "start" && e.ok), "the deferred resume ran a start");
  assert.equal(h.agent.faults.callsOf("acknowledgeQuiesce").length, 0);
});

test("event stream cut → polling with ListJobs/GetJob still sees every phase", async (t) => {
  const h = await Harness.create({ pollIntervalMs: 80 });
  t.after(() => h.cleanup());
  await h.startRegistered();
  await h.logs.waitFor("event stream connected");
  h.agent.faults.setStreams(false);
  await h.logs.waitFor("event stream broken — polling");
  const callsBefore = h.agent.faults.calls.length;

  const job = await h.agent.createJob();
  await h.agent.to(job.id, Phase.PHASE_QUIESCING);
  await h.agent.waitForStack(job.id, "app", StackState.STACK_STATE_QUIESCED);
  await h.agent.to(job.id, Phase.PHASE_SNAPSHOTTED);
  await h.agent.waitForStack(job.id, "app", StackState.STACK_STATE_RESUMED);
  assert.equal((await h.agent.stack(job.id, "app"))?.resumedEarly, true);
  await h.agent.to(job.id, Phase.PHASE_DONE);
  await h.logs.waitFor("backup done", (l) => l.jobId === job.id);

  const later = h.agent.faults.calls.slice(callsBefore);
  assert.ok(later.some((c) => c.method === "listJobs"), "polled ListJobs");
  assert.ok(later.some((c) => c.method === "getJob"), "polled GetJob");
  assert.ok(later.some((c) => c.method === "watchEvents"), "kept trying to reopen the stream");
  assert.equal(h.stack.isRunning(), true);
});

test("the event stream holds the lease: no renewal calls while it is open, renewals by call while it is broken, unregistered on shutdown", async (t) => {
  const h = await Harness.create({ leaseTtlMs: 600, pollIntervalMs: 80 });
  t.after(() => h.cleanup());
  await h.startRegistered();
  await h.logs.waitFor("event stream connected");
  const holding = h.agent.faults.callsOf("watchEvents").at(-1)?.request as { holdLease?: { stack: string; controllerId: string; leaseTtlMs: number }; forStack?: string };
  assert.deepEqual(holding.holdLease, { stack: "app", controllerId: "test-controller", leaseTtlMs: 600 }, "the stream names the lease it holds");
  assert.equal(holding.forStack, "app", "and asks only for what this stack's controller acts on");
  const registered = h.agent.faults.callsOf("registerStack").length;
  await sleep(1_000);
  // At most one more: the renewal that was already waiting when the stream opened.
  assert.ok(h.agent.faults.callsOf("registerStack").length <= registered + 1, `no renewal calls while the stream holds the lease (${h.agent.faults.callsOf("registerStack").length - registered} in 1 s)`);
  assert.ok(h.agent.leaseAlive("app"), "the agent kept the lease alive past its 600 ms TTL");

  h.agent.faults.setStreams(false);
  await h.logs.waitFor("event stream broken — polling");
  const broken = h.agent.faults.callsOf("registerStack").length;
  await sleep(900);
  assert.ok(h.agent.faults.callsOf("registerStack").length >= broken + 3, `renewed by call while the stream is broken (${h.agent.faults.callsOf("registerStack").length - broken} in 0.9 s)`);
  assert.ok(h.agent.leaseAlive("app"), "the lease is alive");

  h.agent.faults.setStreams(true);
  await waitUntil(() => h.logs.find("event stream connected").length >= 2, 3_000, "the stream to reconnect");
  assert.ok((h.agent.faults.callsOf("watchEvents").at(-1)?.request as { holdLease?: unknown }).holdLease, "the new stream holds the lease");
  const reopened = h.agent.faults.callsOf("registerStack").length;
  await sleep(900);
  assert.ok(h.agent.faults.callsOf("registerStack").length <= reopened + 1, "renewal calls stop once a stream holds the lease again");
  assert.ok(h.agent.leaseAlive("app"));

  await h.stop();
  assert.equal(h.agent.faults.callsOf("unregisterStack").length, 1);
  assert.equal(h.agent.logged("stack unregistered").length, 1, "the agent dropped the lease");
  assert.equal(h.agent.leaseAlive("app"), false);
});

test("connections dropped while registration calls fail: the reconnected stream holds the lease, and the calls stop once one succeeds", async (t) => {
  const h = await Harness.create({ leaseTtlMs: 600, pollIntervalMs: 80 });
  t.after(() => h.cleanup());
  await h.startRegistered();
  await h.logs.waitFor("event stream connected");
  h.agent.faults.answerWith.set("registerStack", "LULL_E_SHUTTING_DOWN");
  h.agent.dropConnections();
  await waitUntil(() => h.logs.find("event stream connected").length >= 2, 3_000, "the stream to reconnect");
  assert.ok((h.agent.faults.callsOf("watchEvents").at(-1)?.request as { holdLease?: unknown }).holdLease, "the new stream holds the lease though the last call failed");
  await sleep(800);
  assert.ok(h.agent.leaseAlive("app"), "the stream's hold kept the lease alive while every call failed");
  h.agent.faults.answerWith.delete("registerStack");
  await waitUntil(() => h.agent.faults.callsOf("registerStack").at(-1)?.response !== undefined, 3_000, "a registration call to succeed");
  const accepted = () => h.agent.faults.callsOf("registerStack").filter((c) => c.response !== undefined).length;
  const after = accepted();
  await sleep(900);
  assert.ok(accepted() <= after + 1, `no renewal calls once the stream holds the lease (${accepted() - after} in 0.9 s)`);
  assert.ok(h.agent.leaseAlive("app"));
});

test("an agent that does not keep leases by stream (older): the lease is renewed by call, and the stream holds none", async (t) => {
  const h = await Harness.create({ leaseTtlMs: 600 });
  t.after(() => h.cleanup());
  h.agent.faults.alter.set("registerStack", (res) => ({ ...(res as object), streamKeepsLease: false }));
  await h.startRegistered();
  await sleep(900);
  assert.ok(h.agent.faults.callsOf("registerStack").length >= 3, `renewed (${h.agent.faults.callsOf("registerStack").length} registrations in 0.9 s)`);
  assert.ok(h.agent.leaseAlive("app"), "the lease is alive");
  const streams = h.agent.faults.callsOf("watchEvents");
  assert.ok(streams.length > 0);
  assert.ok(streams.every((c) => (c.request as { holdLease?: unknown }).holdLease === undefined), "no stream asked to hold the lease");
  await h.stop();
  assert.equal(h.agent.leaseAlive("app"), false);
});

test("shutdown while holding the stack stopped resumes it and refuses the pending quiesce", async (t) => {
  const h = await Harness.create();
  t.after(() => h.cleanup());
  await h.startRegistered();
  h.stack.setFault("slow-stop", "400");
  const job = await h.agent.createJob();
  await h.agent.to(job.id, Phase.PHASE_QUIESCING);
  await h.logs.waitFor("quiescing");
  await h.stop();
  assert.equal(h.stack.isRunning(), true, "running after shutdown");
  assert.equal(h.markers.read().kind, "none");
  assert.equal((await h.agent.stack(job.id, "app"))?.state, StackState.STACK_STATE_REFUSED);
});
