// Bad input over gRPC: every malformed, oversized or unknown value is refused with the right
// status and stable code before anything runs; the engine records no call.
import { strict as assert } from "node:assert";
import { rmSync } from "node:fs";
import { after, before, describe, it } from "node:test";
import { status } from "@grpc/grpc-js";
import { Phase, type QuiescePolicy } from "@lull/proto";
import { callUnary, fromServiceError } from "@lull/shared";
import { rejectsWith, startTestAgent, waitForJob, type TestAgent } from "../testing/agent-harness.js";
import { FakeEngine } from "../testing/fake-engine.js";

const UNKNOWN_JOB = "j-0000000000zzzzzzzzzzzzzzzz";
const INVALID = ["LULL_E_INVALID_ARGUMENT", status.INVALID_ARGUMENT] as const;

let t: TestAgent;
let engine: FakeEngine;
before(async () => {
  engine = new FakeEngine({ holdArchive: true });
  t = await startTestAgent({
    engine,
    guests: [
      { id: "demo", driver: "dir", snapshot: "copy", volumes: [{ name: "data", path: "/srv/demo" }] },
      { id: "other", driver: "dir", snapshot: "copy", volumes: [{ name: "data", path: "/srv/other" }] },
    ],
  });
});
after(async () => {
  engine.release();
  await t.stop();
  rmSync(t.dir, { recursive: true, force: true });
});

describe("bad input", () => {
  it("StartBackup: unknown guest, malformed ids, oversized strings and out-of-range numbers start nothing", async () => {
    const api = t.api;
    await rejectsWith(api.startBackup({ guestId: "nosuch" }), "LULL_E_UNKNOWN_GUEST", status.NOT_FOUND);
    await rejectsWith(api.startBackup({ guestId: "" }), ...INVALID);
    await rejectsWith(api.startBackup({ guestId: "../../etc" }), ...INVALID);
    await rejectsWith(api.startBackup({ guestId: "demo; rm -rf /" }), ...INVALID);
    await rejectsWith(api.startBackup({ guestId: "x".repeat(65) }), ...INVALID);
    await rejectsWith(api.startBackup({ guestId: "demo", idempotencyKey: "has space" }), ...INVALID);
    await rejectsWith(api.startBackup({ guestId: "demo", idempotencyKey: "k".repeat(129) }), ...INVALID);
    await rejectsWith(api.startBackup({ guestId: "demo", requestedBy: "r".repeat(129) }), ...INVALID);
    await rejectsWith(api.startBackup({ guestId: "demo", requestedBy: "bell\u0007" }), ...INVALID);
    await rejectsWith(api.startBackup({ guestId: "demo", quiesceTimeoutMs: 5 }), ...INVALID);
    await rejectsWith(api.startBackup({ guestId: "demo", policy: 42 as QuiescePolicy }), ...INVALID);
    assert.deepEqual(engine.callsOf("run"), [], "the engine recorded no run");
    assert.deepEqual((await api.listJobs({})).jobs, [], "no job was created");
  });

  it("a message over 64 KiB is refused by the transport", async () => {
    const err = await callUnary(t.client.startBackup.bind(t.client), {
      guestId: "demo",
      idempotencyKey: "big",
      policy: 0,
      quiesceTimeoutMs: 0,
      requestedBy: "x".repeat(70 * 1024),
    }).then(
      () => assert.fail("accepted a 70 KiB request"),
      (e: unknown) => e,
    );
    assert.equal((fromServiceError(err).cause as { code?: number }).code, status.RESOURCE_EXHAUSTED);
    assert.deepEqual(engine.callsOf("run"), []);
  });

  it("job calls: malformed job ids are INVALID_ARGUMENT, unknown jobs and other guests' jobs NOT_FOUND", async () => {
    const api = t.api;
    await rejectsWith(api.getJob({ guestId: "demo", jobId: "j-123" }), ...INVALID);
    await rejectsWith(api.getJob({ guestId: "demo", jobId: "J-0000000000ZZZZZZZZZZZZZZZZ" }), ...INVALID);
    await rejectsWith(api.getJob({ guestId: "demo", jobId: UNKNOWN_JOB }), "LULL_E_JOB_NOT_FOUND", status.NOT_FOUND);
    await rejectsWith(api.getJob({ guestId: "nosuch", jobId: UNKNOWN_JOB }), "LULL_E_UNKNOWN_GUEST", status.NOT_FOUND);
    await rejectsWith(api.cancelJob({ guestId: "demo", jobId: UNKNOWN_JOB }), "LULL_E_JOB_NOT_FOUND", status.NOT_FOUND);
    await rejectsWith(api.cancelJob({ guestId: "demo", jobId: UNKNOWN_JOB, reason: "r".repeat(1025) }), ...INVALID);
    await rejectsWith(api.listJobs({ limit: 5000 }), ...INVALID);
    await rejectsWith(api.listJobs({ guestId: "nosuch" }), "LULL_E_UNKNOWN_GUEST", status.NOT_FOUND);
    await rejectsWith(api.acknowledgeQuiesce({ guestId: "demo", jobId: UNKNOWN_JOB, stack: "web" }), "LULL_E_JOB_NOT_FOUND", status.NOT_FOUND);
    await rejectsWith(api.reportResumed({ guestId: "demo", jobId: UNKNOWN_JOB, stack: "Web!" }), ...INVALID);

    const { job } = await api.startBackup({ guestId: "demo", idempotencyKey: "scoped" });
    await waitForJob(t, "demo", job!.id, (j) => j.phase === Phase.PHASE_ARCHIVING);
    await rejectsWith(api.getJob({ guestId: "other", jobId: job!.id }), "LULL_E_JOB_NOT_FOUND", status.NOT_FOUND);
    await rejectsWith(api.cancelJob({ guestId: "other", jobId: job!.id }), "LULL_E_JOB_NOT_FOUND", status.NOT_FOUND);
    // A controller's calls check the guest on the record inside their shared commit: another guest's job is not found, and untouched.
    await rejectsWith(api.acknowledgeQuiesce({ guestId: "other", jobId: job!.id, stack: "web" }), "LULL_E_JOB_NOT_FOUND", status.NOT_FOUND);
    await rejectsWith(api.refuseQuiesce({ guestId: "other", jobId: job!.id, stack: "web", reason: "no" }), "LULL_E_JOB_NOT_FOUND", status.NOT_FOUND);
    await rejectsWith(api.reportResumed({ guestId: "other", jobId: job!.id, stack: "web", downtimeMs: 1 }), "LULL_E_JOB_NOT_FOUND", status.NOT_FOUND);
    await rejectsWith(api.startBackup({ guestId: "other", idempotencyKey: "scoped" }), "LULL_E_IDEMPOTENCY_CONFLICT", status.ALREADY_EXISTS);
    await rejectsWith(api.acknowledgeQuiesce({ guestId: "demo", jobId: job!.id, stack: "web" }), "LULL_E_STACK_NOT_REGISTERED", status.FAILED_PRECONDITION);
    assert.equal((await api.getJob({ guestId: "demo", jobId: job!.id })).phase, Phase.PHASE_ARCHIVING, "the job was not disturbed");
  });

  it("stack calls: malformed stack and controller ids, lease out of range, unknown guest", async () => {
    const api = t.api;
    await rejectsWith(api.registerStack({ guestId: "demo", stack: "Web!", controllerId: "c1" }), ...INVALID);
    await rejectsWith(api.registerStack({ guestId: "demo", stack: "web", controllerId: "" }), ...INVALID);
    await rejectsWith(api.registerStack({ guestId: "demo", stack: "web", controllerId: "c1", leaseTtlMs: 10 }), ...INVALID);
    await rejectsWith(api.registerStack({ guestId: "nosuch", stack: "web", controllerId: "c1" }), "LULL_E_UNKNOWN_GUEST", status.NOT_FOUND);
    await rejectsWith(api.unregisterStack({ guestId: "demo", stack: "s".repeat(65), controllerId: "c1" }), ...INVALID);
    await rejectsWith(api.refuseQuiesce({ guestId: "demo", jobId: UNKNOWN_JOB, stack: "web", reason: "nul\u0000" }), ...INVALID);
  });

  it("WatchEvents: unknown guest is NOT_FOUND, a malformed job id INVALID_ARGUMENT", async () => {
    const watchError = (req: { guestId?: string; jobId?: string }) =>
      new Promise<unknown>((resolve) => {
        const call = t.client.watchEvents({ guestId: "", jobId: "", afterSeq: 0, ...req });
        call.on("data", () => {});
        call.on("error", resolve);
        call.on("end", () => resolve(new Error("stream ended without an error")));
      });
    const unknown = fromServiceError(await watchError({ guestId: "nosuch" }));
    assert.equal(unknown.code, "LULL_E_UNKNOWN_GUEST");
    const malformed = fromServiceError(await watchError({ jobId: "nope" }));
    assert.equal(malformed.code, "LULL_E_INVALID_ARGUMENT");
    const missing = fromServiceError(await watchError({ guestId: "demo", jobId: UNKNOWN_JOB }));
    assert.equal(missing.code, "LULL_E_JOB_NOT_FOUND");
  });
});
