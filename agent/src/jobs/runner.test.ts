// The runner seen through the API: cancellation reaches the engine's AbortSignal and the job
// ends cancelled; progress is persisted at most every 250 ms plus the final report.
import { strict as assert } from "node:assert";
import { rmSync } from "node:fs";
import { afterEach, describe, it } from "node:test";
import { status } from "@grpc/grpc-js";
import { EventKind, Phase, SnapshotMode } from "@lull/proto";
import type { GuestConfig } from "../config.js";
import type { BackupEngine, EngineResult, EngineRun } from "../engines/engine.js";
import { collectEvents, rejectsWith, startTestAgent, waitForEnd, waitForJob, type TestAgent } from "../testing/agent-harness.js";
import { FakeEngine } from "../testing/fake-engine.js";

let current: TestAgent | undefined;
afterEach(async () => {
  if (!current) return;
  await current.stop();
  rmSync(current.dir, { recursive: true, force: true });
  current = undefined;
});

async function agentWith(engine: BackupEngine): Promise<TestAgent> {
  current = await startTestAgent({ engine });
  return current;
}

/** Archives for `durationMs`, reporting progress every `everyMs`. */
class SlowArchiveEngine implements BackupEngine {
  readonly name = "native" as const;
  constructor(
    private readonly durationMs: number,
    private readonly everyMs: number,
  ) {}
  async run({ hooks }: EngineRun): Promise<EngineResult> {
    await hooks.quiesce();
    hooks.archiving({ mode: SnapshotMode.SNAPSHOT_MODE_NONE, bytesTotal: 1_000_000 });
    const start = Date.now();
    while (Date.now() - start < this.durationMs) {
      await new Promise((r) => setTimeout(r, this.everyMs));
      hooks.progress(Math.min(999_999, Math.round(((Date.now() - start) / this.durationMs) * 1_000_000)), 1_000_000);
    }
    hooks.progress(1_000_000, 1_000_000);
    return { archivePath: "/archives/x.tar.zst", archiveBytes: 1_000_000 };
  }
  async sweep(_guests: readonly GuestConfig[]): Promise<string[]> {
    return [];
  }
}

describe("cancel", () => {
  it("aborts the engine while archiving; the job ends cancelled and the engine cleaned up", async () => {
    const engine = new FakeEngine({ holdArchive: true });
    const t = await agentWith(engine);
    const { job } = await t.api.startBackup({ guestId: "demo" });
    await waitForJob(t, "demo", job!.id, (j) => j.phase === Phase.PHASE_ARCHIVING);
    const cancelled = await t.api.cancelJob({ guestId: "demo", jobId: job!.id, reason: "operator changed their mind" });
    assert.equal(cancelled.phase, Phase.PHASE_CANCELLED);
    assert.equal(cancelled.failedIn, Phase.PHASE_ARCHIVING);
    assert.equal(cancelled.errorCode, "LULL_E_CANCELLED");
    assert.equal(cancelled.errorMessage, "operator changed their mind");
    assert.ok(engine.calls.includes(`cleanup ${job!.id}`), "the engine's finally ran");
    await rejectsWith(t.api.cancelJob({ guestId: "demo", jobId: job!.id }), "LULL_E_JOB_TERMINAL", status.FAILED_PRECONDITION);
  });

  it("cancelling while the barrier waits ends the job before any snapshot", async () => {
    const engine = new FakeEngine();
    const t = await agentWith(engine);
    await t.api.registerStack({ guestId: "demo", stack: "web", controllerId: "c1" });
    const { job } = await t.api.startBackup({ guestId: "demo", quiesceTimeoutMs: 60_000 });
    await waitForJob(t, "demo", job!.id, (j) => j.phase === Phase.PHASE_QUIESCING);
    const cancelled = await t.api.cancelJob({ guestId: "demo", jobId: job!.id });
    assert.equal(cancelled.phase, Phase.PHASE_CANCELLED);
    assert.equal(cancelled.failedIn, Phase.PHASE_QUIESCING);
    assert.equal(engine.callsOf("snapshot").length, 0);
    const events = await collectEvents(t, { jobId: job!.id }, (e) => e.phase === Phase.PHASE_CANCELLED);
    assert.equal(events.at(-1)?.errorCode, "LULL_E_CANCELLED");
  });
});

describe("progress", () => {
  it("a burst of reports is persisted as one final report", async () => {
    const t = await agentWith(new FakeEngine({ progressSteps: 500, bytesTotal: 5000 }));
    const { job } = await t.api.startBackup({ guestId: "demo" });
    const done = await waitForEnd(t, "demo", job!.id);
    assert.equal(done.bytesDone, 5000);
    const events = await collectEvents(t, { jobId: job!.id }, (e) => e.phase === Phase.PHASE_DONE);
    const progress = events.filter((e) => e.kind === EventKind.EVENT_KIND_PROGRESS);
    assert.ok(progress.length >= 1 && progress.length <= 2, `${progress.length} PROGRESS events for 500 reports`);
    assert.equal(progress.at(-1)?.bytesDone, 5000);
  });

  it("steady reports are persisted at most every 250 ms, plus the final one", async () => {
    const t = await agentWith(new SlowArchiveEngine(800, 20));
    const { job } = await t.api.startBackup({ guestId: "demo" });
    const done = await waitForEnd(t, "demo", job!.id);
    assert.equal(done.bytesDone, 1_000_000);
    assert.ok(done.archiveMs >= 800, `archive_ms ${done.archiveMs}`);
    const events = await collectEvents(t, { jobId: job!.id }, (e) => e.phase === Phase.PHASE_DONE);
    const progress = events.filter((e) => e.kind === EventKind.EVENT_KIND_PROGRESS);
    assert.ok(progress.length >= 3 && progress.length <= 5, `${progress.length} PROGRESS events in 800 ms`);
    const times = progress.map((e) => e.at!.getTime());
    for (let i = 1; i < times.length - 1; i++) assert.ok(times[i]! - times[i - 1]! >= 245, `gap ${times[i]! - times[i - 1]!} ms`);
    assert.equal(progress.at(-1)?.bytesDone, 1_000_000, "the final report is persisted");
  });
});
