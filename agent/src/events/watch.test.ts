// Event streams: replay after a sequence number, then live, with nothing missed and nothing
// twice, also while events are committed during the replay and when a watcher falls behind.
import { strict as assert } from "node:assert";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { EventKind, Phase, QuiescePolicy, type Event, type EventBatch } from "@lull/proto";
import { silentLogger, systemClock } from "@lull/shared";
import { eventFor, newJobRecord } from "../jobs/job.js";
import { newJobId } from "../jobs/job-id.js";
import { JobLedger } from "../jobs/ledger.js";
import { JobStore } from "../jobs/store.js";
import { FakeEngine } from "../testing/fake-engine.js";
import { collectEvents, startTestAgent, waitForEnd, waitForJob, withTestAgent } from "../testing/agent-harness.js";
import { EventBus } from "./bus.js";
import { streamEvents } from "./watch.js";

const dirs: string[] = [];
after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

function ledgerWithJob() {
  const dir = mkdtempSync(join(tmpdir(), "lull-watch-"));
  dirs.push(dir);
  const store = JobStore.open(join(dir, "agent.db"));
  const log = silentLogger();
  const bus = new EventBus(log);
  const ledger = new JobLedger({ store, bus, log, clock: systemClock });
  const record = newJobRecord({
    id: newJobId(Date.now()),
    guestId: "demo",
    engine: "native",
    policy: QuiescePolicy.QUIESCE_POLICY_FAIL,
    idempotencyKey: "k",
    quiesceTimeoutMs: 1000,
    requestedBy: "",
    now: Date.now(),
  });
  ledger.create(record, eventFor(record, EventKind.EVENT_KIND_PHASE));
  const note = (message: string) => ledger.apply(record.id, { type: "note", message });
  return { store, bus, ledger, note, jobId: record.id };
}

/** Streams until `count` events arrived; `onSend` runs inside each send (to commit more meanwhile). */
async function take(
  ctx: ReturnType<typeof ledgerWithJob>,
  afterSeq: number,
  count: number,
  onSend: (e: Event, i: number) => void | Promise<void>,
  maxBuffered?: number,
) {
  const got: number[] = [];
  const stop = new AbortController();
  await streamEvents({
    store: ctx.store,
    bus: ctx.bus,
    filter: {},
    afterSeq,
    signal: stop.signal,
    pageSize: 3,
    ...(maxBuffered !== undefined ? { maxBuffered } : {}),
    send: async (events) => {
      for (const e of events) {
        if (stop.signal.aborted) return;
        got.push(e.seq);
        await onSend(e, got.length);
        if (got.length === count) stop.abort();
      }
    },
  });
  return got;
}

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

describe("event stream", () => {
  it("replays after the given seq, then delivers events committed during the replay exactly once", async () => {
    const ctx = ledgerWithJob();
    for (let i = 0; i < 9; i++) ctx.note(`before ${i}`); // seqs 1..10
    const got = await take(ctx, 4, 12, async (_e, i) => {
      if (i <= 5) ctx.note(`during replay ${i}`); // committed while the backlog is being sent
      await new Promise((r) => setImmediate(r));
      if (i === 10) ctx.note("live");
    });
    assert.deepEqual(got, range(5, 16));
    ctx.store.close();
  });

  it("a watcher that falls behind reads the store again and still misses nothing", async () => {
    const ctx = ledgerWithJob();
    const got = await take(
      ctx,
      0,
      31,
      async (_e, i) => {
        if (i === 1) for (let k = 0; k < 30; k++) ctx.note(`burst ${k}`); // overflows a buffer of 4
        await new Promise((r) => setImmediate(r));
      },
      4,
    );
    assert.deepEqual(got, range(1, 31));
    assert.equal(ctx.bus.size, 0, "the stream unsubscribed");
    ctx.store.close();
  });

  it("over gRPC: resumes from a sequence number while jobs run, with no gap and no duplicate", async () => {
    await withTestAgent({ engine: new FakeEngine({ progressSteps: 3 }) }, async (t) => {
      const first = await t.api.startBackup({ guestId: "demo" });
      await waitForEnd(t, "demo", first.job!.id);
      const all = await collectEvents(t, {}, (e) => e.phase === Phase.PHASE_DONE);
      const k = all[Math.floor(all.length / 2)]!.seq;

      let secondId = "";
      const watching = collectEvents(t, { afterSeq: k }, (e) => e.jobId === secondId && e.kind === EventKind.EVENT_KIND_PHASE && e.phase === Phase.PHASE_DONE);
      const second = await t.api.startBackup({ guestId: "demo" });
      secondId = second.job!.id;
      const got = await watching;
      const seqs = got.map((e) => e.seq);
      const last = seqs.at(-1)!;
      assert.deepEqual(seqs, range(k + 1, last), "every event after k exactly once, in order");
      assert.ok(got.some((e) => e.jobId === second.job!.id && e.phase === Phase.PHASE_QUEUED), "live events of the new job");

      const info = await t.api.getAgentInfo();
      assert.equal(info.lastEventSeq, last);
    });
  });

  it("for_stack: a controller's stream carries its own stack's STACK events and no PROGRESS, live and replayed alike", async () => {
    await withTestAgent({ engine: new FakeEngine({ progressSteps: 3 }) }, async (t) => {
      for (const stack of ["web", "db"]) await t.api.registerStack({ guestId: "demo", stack, controllerId: `c-${stack}` });
      let jobId = "";
      const done = (e: Event) => e.jobId === jobId && e.kind === EventKind.EVENT_KIND_PHASE && e.phase === Phase.PHASE_DONE;
      const live = collectEvents(t, { guestId: "demo", forStack: "web" }, done);
      const { job } = await t.api.startBackup({ guestId: "demo" });
      jobId = job!.id;
      await waitForJob(t, "demo", jobId, (j) => j.phase === Phase.PHASE_QUIESCING);
      for (const stack of ["web", "db"]) await t.api.acknowledgeQuiesce({ guestId: "demo", jobId, stack });
      await waitForEnd(t, "demo", jobId);
      for (const stack of ["web", "db"]) await t.api.reportResumed({ guestId: "demo", jobId, stack, downtimeMs: 5, early: true });

      const all = await collectEvents(t, { guestId: "demo" }, (e, got) => got.filter((x) => x.kind === EventKind.EVENT_KIND_STACK).length === 4);
      assert.ok(all.some((e) => e.kind === EventKind.EVENT_KIND_PROGRESS), "the job reported progress");
      assert.ok(all.some((e) => e.kind === EventKind.EVENT_KIND_STACK && e.stack === "db"), "and the other stack's changes");
      const expected = all.filter((e) => e.kind !== EventKind.EVENT_KIND_PROGRESS && !(e.kind === EventKind.EVENT_KIND_STACK && e.stack !== "web")).map((e) => e.seq);
      const replayed = await collectEvents(t, { guestId: "demo", forStack: "web" }, (e) => e.seq >= expected.at(-1)!);
      assert.deepEqual(replayed.map((e) => e.seq), expected, "replayed from the store: the same selection");
      const upToDone = expected.filter((s) => s <= all.find(done)!.seq);
      assert.deepEqual((await live).map((e) => e.seq), upToDone, "live from the bus: the same selection");
      assert.ok(expected.length < all.length, "the other stack's and the progress events were left out");
    });
  });
});

describe("WatchEventBatches", () => {
  it("over gRPC: the events of WatchEvents, in order, several per message", async () => {
    await withTestAgent({ engine: new FakeEngine({ progressSteps: 20 }) }, async (t) => {
      const first = await t.api.startBackup({ guestId: "demo" });
      await waitForEnd(t, "demo", first.job!.id);
      const one = await collectEvents(t, {}, (e) => e.phase === Phase.PHASE_DONE);
      const batches: Event[][] = [];
      await new Promise<void>((resolve, reject) => {
        const call = t.client.watchEventBatches({ guestId: "", jobId: "", afterSeq: 0 });
        call.on("data", (b: EventBatch) => {
          batches.push(b.events);
          if (b.events.some((e) => e.seq >= one.at(-1)!.seq)) {
            call.cancel();
            resolve();
          }
        });
        call.on("error", (err: Error) => (/CANCELLED/.test(err.message) ? undefined : reject(err)));
      });
      assert.deepEqual(batches.flat(), one, "the same events");
      assert.ok(batches.length < one.length / 5, `${one.length} events in ${batches.length} messages`);
    });
  });
});

describe("event stream lifecycle", () => {
  it("the agent's shutdown ends open streams cleanly", async () => {
    // A long grace period, so waiting it out would show plainly.
    const t = await startTestAgent({ engine: new FakeEngine(), config: { shutdownGraceMs: 20_000 } });
    const call = t.client.watchEvents({ guestId: "", jobId: "", afterSeq: 0 });
    const ended = new Promise<string>((resolve) => {
      call.on("data", () => {});
      call.on("status", (s: { code: number }) => resolve(`status ${s.code}`));
      call.on("error", (e: Error) => resolve(`error ${e.message}`));
    });
    await new Promise((r) => setTimeout(r, 100)); // the stream is open and idle
    const started = Date.now();
    await t.agent.stop();
    assert.equal(await ended, "status 0", "the stream ended with OK");
    assert.ok(Date.now() - started < 10_000, "shutdown did not wait for the stream's grace period");
    t.client.close();
    rmSync(t.dir, { recursive: true, force: true });
  });
});
