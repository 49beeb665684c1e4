// Component tests of the agent over gRPC: real SQLite in a temp dir, real gRPC on 127.0.0.1
// port 0, a fake engine. Each test asserts what a client of the API would see.
import { strict as assert } from "node:assert";
import { spawn } from "node:child_process";
import { rmSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { afterEach, describe, it } from "node:test";
import { status, type ServiceError } from "@grpc/grpc-js";
import { Consistency, EventKind, Phase, QuiescePolicy, SnapshotMode, StackState } from "@lull/proto";
import { FakeEngine } from "../testing/fake-engine.js";
import { collectEvents, leaseExpiresAt, rejectsWith, startTestAgent, waitForEnd, waitForJob, type TestAgent } from "../testing/agent-harness.js";
import { waitUntil } from "../testing/wait.js";

let current: TestAgent | undefined;
afterEach(async () => {
  if (!current) return;
  await current.stop();
  rmSync(current.dir, { recursive: true, force: true });
  current = undefined;
});

async function agentWith(engine = new FakeEngine(), config: Record<string, unknown> = {}): Promise<TestAgent> {
  current = await startTestAgent({ engine, config });
  return current;
}

const register = (t: TestAgent, stack: string) => t.api.registerStack({ guestId: "demo", stack, controllerId: `ctl-${stack}` });

describe("StartBackup", () => {
  it("runs a job to done and is idempotent: the same key returns the same job with created=false", async () => {
    const t = await agentWith();
    const first = await t.api.startBackup({ guestId: "demo", idempotencyKey: "nightly-1", requestedBy: "cron" });
    assert.equal(first.created, true);
    assert.match(first.job?.id ?? "", /^j-[0-9a-z]{26}$/);
    const again = await t.api.startBackup({ guestId: "demo", idempotencyKey: "nightly-1" });
    assert.equal(again.created, false);
    assert.equal(again.job?.id, first.job?.id);
    const done = await waitForEnd(t, "demo", first.job!.id);
    assert.equal(done.phase, Phase.PHASE_DONE);
    assert.equal(done.requestedBy, "cron");
    assert.equal(done.archivePath, `/archives/lull-demo-${done.id}.tar.zst`);
    const afterEnd = await t.api.startBackup({ guestId: "demo", idempotencyKey: "nightly-1" });
    assert.equal(afterEnd.created, false, "a retry after the end still returns the same job");
    assert.equal((t.engine as FakeEngine).callsOf("run").length, 1, "the engine ran once");
  });

  it("one job per guest: a second start with another key is FAILED_PRECONDITION LULL_E_GUEST_BUSY", async () => {
    const engine = new FakeEngine({ holdArchive: true });
    const t = await agentWith(engine);
    const first = await t.api.startBackup({ guestId: "demo", idempotencyKey: "a" });
    await rejectsWith(t.api.startBackup({ guestId: "demo", idempotencyKey: "b" }), "LULL_E_GUEST_BUSY", status.FAILED_PRECONDITION);
    engine.release();
    await waitForEnd(t, "demo", first.job!.id);
    const next = await t.api.startBackup({ guestId: "demo", idempotencyKey: "b" });
    assert.equal(next.created, true, "after the first job ended, the guest takes a new one");
  });
});

describe("quiesce barrier", () => {
  it("waits until both registered stacks acknowledged, then snapshots; consistency APP", async () => {
    const engine = new FakeEngine();
    const t = await agentWith(engine);
    await register(t, "web");
    await register(t, "db");
    const { job } = await t.api.startBackup({ guestId: "demo", quiesceTimeoutMs: 10_000 });
    const id = job!.id;
    const quiescing = await waitForJob(t, "demo", id, (j) => j.phase === Phase.PHASE_QUIESCING);
    assert.deepEqual(quiescing.stacks.map((s) => [s.stack, s.state]), [["db", StackState.STACK_STATE_PENDING], ["web", StackState.STACK_STATE_PENDING]]);

    const reply = await t.api.acknowledgeQuiesce({ guestId: "demo", jobId: id, stack: "web", stoppedAt: new Date() });
    assert.equal(reply.job?.stacks.find((s) => s.stack === "web")?.state, StackState.STACK_STATE_QUIESCED);
    await new Promise((r) => setTimeout(r, 150));
    assert.equal((await t.api.getJob({ guestId: "demo", jobId: id })).phase, Phase.PHASE_QUIESCING, "one ack is not enough");
    assert.equal(engine.callsOf("snapshot").length, 0);

    await t.api.acknowledgeQuiesce({ guestId: "demo", jobId: id, stack: "db" });
    const done = await waitForEnd(t, "demo", id);
    assert.equal(done.phase, Phase.PHASE_DONE);
    assert.equal(done.consistency, Consistency.CONSISTENCY_APP);
    assert.equal(done.mode, SnapshotMode.SNAPSHOT_MODE_SNAPSHOT);
    assert.ok(done.snapshotAt, "the job records when the snapshot was taken");
    assert.ok(done.quiesceMs >= 150, `quiesce_ms ${done.quiesceMs} covers the wait`);
    assert.ok(done.totalMs >= done.quiesceMs);
    assert.equal(engine.callsOf("snapshot").length, 1);
  });

  it("a refusal under the fail policy fails the job with LULL_E_QUIESCE_REFUSED before any snapshot", async () => {
    const engine = new FakeEngine();
    const t = await agentWith(engine);
    await register(t, "web");
    await register(t, "db");
    const { job } = await t.api.startBackup({ guestId: "demo", policy: QuiescePolicy.QUIESCE_POLICY_FAIL, quiesceTimeoutMs: 10_000 });
    await waitForJob(t, "demo", job!.id, (j) => j.phase === Phase.PHASE_QUIESCING);
    await t.api.acknowledgeQuiesce({ guestId: "demo", jobId: job!.id, stack: "db" });
    await t.api.refuseQuiesce({ guestId: "demo", jobId: job!.id, stack: "web", reason: "migration running" });
    const failed = await waitForEnd(t, "demo", job!.id);
    assert.equal(failed.phase, Phase.PHASE_FAILED);
    assert.equal(failed.failedIn, Phase.PHASE_QUIESCING);
    assert.equal(failed.errorCode, "LULL_E_QUIESCE_REFUSED");
    assert.match(failed.errorMessage, /web \(refused: migration running\)/);
    assert.equal(failed.stacks.find((s) => s.stack === "web")?.reason, "migration running");
    assert.equal(engine.callsOf("snapshot").length, 0, "no snapshot call reached the engine");
    assert.equal(engine.callsOf("cleanup").length, 1, "the engine still cleaned up");
  });

  it("a quiesce timeout under the fail policy fails the job with LULL_E_QUIESCE_TIMEOUT", async () => {
    const engine = new FakeEngine();
    const t = await agentWith(engine);
    await register(t, "web");
    const { job } = await t.api.startBackup({ guestId: "demo", policy: QuiescePolicy.QUIESCE_POLICY_FAIL, quiesceTimeoutMs: 200 });
    const failed = await waitForEnd(t, "demo", job!.id);
    assert.equal(failed.phase, Phase.PHASE_FAILED);
    assert.equal(failed.errorCode, "LULL_E_QUIESCE_TIMEOUT");
    assert.equal(failed.failedIn, Phase.PHASE_QUIESCING);
    assert.equal(failed.stacks[0]?.state, StackState.STACK_STATE_TIMED_OUT);
    assert.equal(engine.callsOf("snapshot").length, 0);
  });

  it("a quiesce timeout under crash-consistent goes on and records consistency CRASH with a note naming the stack", async () => {
    const engine = new FakeEngine();
    const t = await agentWith(engine);
    await register(t, "web");
    await register(t, "db");
    const { job } = await t.api.startBackup({ guestId: "demo", policy: QuiescePolicy.QUIESCE_POLICY_CRASH_CONSISTENT, quiesceTimeoutMs: 200 });
    await waitForJob(t, "demo", job!.id, (j) => j.phase === Phase.PHASE_QUIESCING);
    await t.api.acknowledgeQuiesce({ guestId: "demo", jobId: job!.id, stack: "db" });
    const done = await waitForEnd(t, "demo", job!.id);
    assert.equal(done.phase, Phase.PHASE_DONE);
    assert.equal(done.consistency, Consistency.CONSISTENCY_CRASH);
    assert.deepEqual(done.stacks.map((s) => [s.stack, s.state]), [["db", StackState.STACK_STATE_QUIESCED], ["web", StackState.STACK_STATE_TIMED_OUT]]);
    const events = await collectEvents(t, { jobId: job!.id }, (e) => e.phase === Phase.PHASE_DONE);
    const note = events.find((e) => e.kind === EventKind.EVENT_KIND_NOTE && e.message.startsWith("crash-consistent"));
    assert.ok(note, "a note tells that the backup is crash-consistent");
    assert.match(note.message, /web \(no acknowledgement within 200 ms\)/);
    assert.doesNotMatch(note.message, /db/);
    assert.ok(events.filter((e) => e.phase === Phase.PHASE_SNAPSHOTTED).every((e) => e.consistency === Consistency.CONSISTENCY_CRASH));
  });

  it("with no registered stacks the job goes on crash-consistent with the note 'no stacks registered'", async () => {
    const t = await agentWith();
    const { job } = await t.api.startBackup({ guestId: "demo" });
    const done = await waitForEnd(t, "demo", job!.id);
    assert.equal(done.phase, Phase.PHASE_DONE);
    assert.equal(done.consistency, Consistency.CONSISTENCY_CRASH);
    const events = await collectEvents(t, { jobId: job!.id }, (e) => e.phase === Phase.PHASE_DONE);
    assert.ok(events.some((e) => e.kind === EventKind.EVENT_KIND_NOTE && e.message === "no stacks registered"));
  });

  it("a stack whose lease ran out is not part of the barrier", async () => {
    const t = await agentWith();
    await t.api.registerStack({ guestId: "demo", stack: "gone", controllerId: "c-gone", leaseTtlMs: 500 });
    await new Promise((r) => setTimeout(r, 550));
    const { job } = await t.api.startBackup({ guestId: "demo" });
    const done = await waitForEnd(t, "demo", job!.id);
    assert.deepEqual(done.stacks, []);
    assert.equal(done.consistency, Consistency.CONSISTENCY_CRASH);
    const events = await collectEvents(t, { jobId: job!.id }, (e) => e.phase === Phase.PHASE_DONE);
    assert.ok(
      events.some((e) => e.kind === EventKind.EVENT_KIND_NOTE && /^no stack could be asked: gone \(its controller's lease ran out at /.test(e.message)),
      "the note names the unreachable stack",
    );
  });

  it("a lapsed stack beside a quiesced one: the job is crash-consistent and names it, never APP", async () => {
    const t = await agentWith();
    await t.api.registerStack({ guestId: "demo", stack: "gone", controllerId: "c-gone", leaseTtlMs: 500 });
    await register(t, "web");
    await new Promise((r) => setTimeout(r, 550));
    const { job } = await t.api.startBackup({ guestId: "demo" });
    await waitForJob(t, "demo", job!.id, (j) => j.phase === Phase.PHASE_QUIESCING);
    await t.api.acknowledgeQuiesce({ guestId: "demo", jobId: job!.id, stack: "web" });
    const done = await waitForEnd(t, "demo", job!.id);
    assert.equal(done.phase, Phase.PHASE_DONE);
    assert.deepEqual(done.stacks.map((s) => s.stack), ["web"], "only the reachable stack was in the barrier");
    assert.equal(done.consistency, Consistency.CONSISTENCY_CRASH);
    const events = await collectEvents(t, { jobId: job!.id }, (e) => e.phase === Phase.PHASE_DONE);
    assert.ok(events.some((e) => e.kind === EventKind.EVENT_KIND_NOTE && e.message.startsWith("crash-consistent: not quiesced: gone (")));
  });

  it("ReportResumed stores downtime and the early flag per stack and emits a STACK event", async () => {
    const t = await agentWith();
    await register(t, "web");
    const { job } = await t.api.startBackup({ guestId: "demo" });
    await waitForJob(t, "demo", job!.id, (j) => j.phase === Phase.PHASE_QUIESCING);
    await t.api.acknowledgeQuiesce({ guestId: "demo", jobId: job!.id, stack: "web" });
    await waitForEnd(t, "demo", job!.id);
    await t.api.reportResumed({ guestId: "demo", jobId: job!.id, stack: "web", downtimeMs: 321, early: true, resumedAt: new Date() });
    const after = await t.api.getJob({ guestId: "demo", jobId: job!.id });
    const web = after.stacks[0];
    assert.equal(web?.state, StackState.STACK_STATE_RESUMED);
    assert.equal(web?.downtimeMs, 321);
    assert.equal(web?.resumedEarly, true);
    assert.ok(web?.resumedAt);
    const events = await collectEvents(t, { jobId: job!.id }, (e) => e.kind === EventKind.EVENT_KIND_STACK && e.stackState === StackState.STACK_STATE_RESUMED);
    assert.equal(events.at(-1)?.downtimeMs, 321);
  });
});

describe("leases held by event streams (WatchEventsRequest.hold_lease)", () => {
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
  /** Opens a stream of guest demo holding the lease of `stack`; resolves once the agent answered with its headers. */
  const holdingStream = async (t: TestAgent, stack: string, leaseTtlMs = 600) => {
    const call = t.client.watchEvents({ guestId: "demo", jobId: "", afterSeq: 0, holdLease: { stack, controllerId: `ctl-${stack}`, leaseTtlMs } });
    call.on("error", (err: ServiceError) => assert.equal(err.code, status.CANCELLED, `the holding stream ended by the test alone: ${err.message}`));
    call.on("data", () => undefined);
    await new Promise((resolve) => call.once("metadata", resolve));
    return { call };
  };

  it("registers the stack and keeps its lease alive with no RegisterStack calls; once the stream ends it runs out after its TTL", async () => {
    const t = await agentWith();
    const { call } = await holdingStream(t, "web");
    await waitUntil(() => (leaseExpiresAt(t, "demo", "web") ?? 0) > Date.now(), 2_000, "the stream to register the stack");
    await sleep(1_000);
    assert.ok((leaseExpiresAt(t, "demo", "web") ?? 0) > Date.now(), "alive 1 s later with a 600 ms TTL: the agent renewed it");
    assert.equal(t.logs.filter((l) => l.msg === "stack registered").length, 1, "registered once, renewed quietly");
    const { job } = await t.api.startBackup({ guestId: "demo" });
    await waitForJob(t, "demo", job!.id, (j) => j.phase === Phase.PHASE_QUIESCING);
    assert.deepEqual((await t.api.getJob({ guestId: "demo", jobId: job!.id })).stacks.map((s) => s.stack), ["web"], "the held stack is in the barrier");
    await t.api.acknowledgeQuiesce({ guestId: "demo", jobId: job!.id, stack: "web" });
    await waitForEnd(t, "demo", job!.id);
    call.cancel();
    await sleep(900);
    assert.ok((leaseExpiresAt(t, "demo", "web") ?? Infinity) <= Date.now(), "no longer renewed once the stream ended");
  });

  it("UnregisterStack drops a held lease for good, even while its stream stays open", async () => {
    const t = await agentWith();
    const { call } = await holdingStream(t, "web", 500);
    await waitUntil(() => leaseExpiresAt(t, "demo", "web") !== undefined, 2_000, "the stream to register the stack");
    await t.api.unregisterStack({ guestId: "demo", stack: "web", controllerId: "ctl-web" });
    await sleep(700);
    assert.equal(leaseExpiresAt(t, "demo", "web"), undefined, "not registered again by the open stream");
    call.cancel();
  });

  it("a controller that stops answering (SIGSTOP) loses its connection at the keepalive, and the lease its stream held runs out", async () => {
    const t = await agentWith(new FakeEngine(), { listen: { address: "127.0.0.1:0", insecure: true, keepaliveMs: 1_000 } });
    // A controller's stream in a process of its own, so that it can be frozen.
    const script = `import { createAgentClient } from "@lull/shared";
      const call = createAgentClient({ address: process.argv[1] }).watchEvents({ guestId: "demo", jobId: "", afterSeq: 0, holdLease: { stack: "frozen", controllerId: "ctl-frozen", leaseTtlMs: 600 } });
      call.on("metadata", () => process.stdout.write("open\\n"));
      call.on("data", () => undefined);
      call.on("error", () => undefined);`;
    const child = spawn(process.execPath, ["--input-type=module", "-e", script, `unix://${t.agent.socketPath}`], { cwd: fileURLToPath(new URL("../../", import.meta.url)), stdio: ["ignore", "pipe", "inherit"] });
    try {
      await new Promise<void>((resolve, reject) => {
        child.stdout.on("data", (chunk: Buffer) => chunk.toString().includes("open") && resolve());
        child.once("exit", (code) => reject(new Error(`the watching process exited (${code}) before its stream opened`)));
      });
      await waitUntil(() => (leaseExpiresAt(t, "demo", "frozen") ?? 0) > Date.now(), 2_000, "the stream to register the stack");
      await sleep(1_000);
      assert.ok((leaseExpiresAt(t, "demo", "frozen") ?? 0) > Date.now(), "held while the process answers");
      child.kill("SIGSTOP");
      const frozenAt = Date.now();
      await waitUntil(() => (leaseExpiresAt(t, "demo", "frozen") ?? Infinity) <= Date.now(), 6_000, "the frozen controller's lease to run out");
      // Keepalive 1 s, answered within 0.5 s, then the 600 ms TTL: a few seconds, not never.
      assert.ok(Date.now() - frozenAt < 6_000);
    } finally {
      child.kill("SIGKILL");
    }
  });

  it("a hold without a guest, or with a malformed stack or TTL, is INVALID_ARGUMENT naming the field; nothing is registered", async () => {
    const t = await agentWith();
    const cases: Array<[Record<string, unknown>, RegExp]> = [
      [{ guestId: "", holdLease: { stack: "web", controllerId: "c1", leaseTtlMs: 0 } }, /hold_lease needs guest_id/],
      [{ guestId: "demo", holdLease: { stack: "no spaces", controllerId: "c1", leaseTtlMs: 0 } }, /hold_lease\.stack/],
      [{ guestId: "demo", holdLease: { stack: "web", controllerId: "c1", leaseTtlMs: 10 } }, /hold_lease\.lease_ttl_ms/],
    ];
    for (const [request, message] of cases) {
      const err = await rejectsWith(collectEvents(t, request, () => true, 2_000), "LULL_E_INVALID_ARGUMENT", status.INVALID_ARGUMENT);
      assert.match(err.message, message);
    }
    assert.equal(leaseExpiresAt(t, "demo", "web"), undefined);
  });
});
