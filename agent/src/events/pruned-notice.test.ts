// A watcher whose stream covers events that retention deleted is told so: a NOTE with
// LULL_E_EVENTS_PRUNED numbered with the newest pruned seq, in sequence order, and nothing that
// still exists is withheld. Streams that lost nothing (positioned after the pruned events, of one
// job, of a guest with nothing pruned) get no notice. In-process on a real SQLite store, and over
// gRPC against a real agent that pruned at start-up.
import { strict as assert } from "node:assert";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { EventKind, type Event } from "@lull/proto";
import { silentLogger } from "@lull/shared";
import { DATABASE_FILE } from "../agent.js";
import { JobStore } from "../jobs/store.js";
import { PruneStore } from "../retention/prune-store.js";
import { DAY_MS } from "../retention/config.js";
import { History, NOW } from "../retention/testing/seed-history.js";
import { collectEvents, startTestAgent } from "../testing/agent-harness.js";
import { FakeEngine } from "../testing/fake-engine.js";
import { EventBus, type EventFilter } from "./bus.js";
import { EVENTS_PRUNED } from "./pruned-notice.js";
import { streamEvents } from "./watch.js";

const dirs: string[] = [];
after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

const isNotice = (e: Event) => e.kind === EventKind.EVENT_KIND_NOTE && e.errorCode === EVENTS_PRUNED;

/** a: two old jobs that go and a new one that stays; b: one old job that stays (keepLast 1). */
function prunedHistory() {
  const dir = mkdtempSync(join(tmpdir(), "lull-pruned-notice-"));
  dirs.push(dir);
  const store = JobStore.open(join(dir, "agent.db"));
  const h = new History(store);
  const aOld = h.ended("a", 100, { progress: 2 });
  const bOld = h.ended("b", 90); // b's only job: kept (keepLast 1)
  const aOlder = h.ended("a", 80);
  const aNew = h.ended("a", 1); // a's newest: kept
  const seqOf = (jobId: string) => store.events.after({ afterSeq: 0, jobId, limit: 1000 }).map((e) => e.seq);
  const before = { aOld: seqOf(aOld), bOld: seqOf(bOld), aOlder: seqOf(aOlder), aNew: seqOf(aNew) };
  const prune = new PruneStore(store);
  prune.deleteUnits(prune.prunableUnits({ maxAgeMs: 30 * DAY_MS, keepLast: 1 }, NOW));
  return { store, jobs: { aOld, bOld, aOlder, aNew }, seqs: before, prunedThrough: Math.max(...before.aOlder) };
}

/** Everything the stream sends until it has sent the last stored event that matches `filter`. */
async function stream(store: JobStore, filter: EventFilter, afterSeq: number, pageSize = 3): Promise<Event[]> {
  const got: Event[] = [];
  const stop = new AbortController();
  const last = store.events.after({ afterSeq, ...filter, limit: 100_000 }).at(-1)!.seq;
  const bus = new EventBus(silentLogger());
  await streamEvents({
    store,
    bus,
    filter,
    afterSeq,
    signal: stop.signal,
    pageSize,
    now: () => NOW,
    send: async (events) => {
      got.push(...events);
      if (events.at(-1)!.seq >= last) stop.abort();
    },
  });
  return got;
}

describe("WatchEvents after retention", () => {
  it("a stream from before the pruned events gets the kept ones below the watermark, then the notice, then the rest", async () => {
    const { store, seqs, prunedThrough } = prunedHistory();
    const got = await stream(store, {}, 0);
    const expectedKept = [...seqs.bOld, ...seqs.aNew];
    assert.deepEqual(got.filter((e) => !isNotice(e)).map((e) => e.seq), expectedKept, "every event that still exists");
    const notices = got.filter(isNotice);
    assert.equal(notices.length, 1);
    assert.equal(notices[0]!.seq, prunedThrough, "numbered with the newest pruned seq");
    assert.match(notices[0]!.message, new RegExp(`events up to #${prunedThrough} .*after #0`));
    const order = got.map((e) => e.seq);
    assert.deepEqual(order, [...order].sort((x, y) => x - y), "sequence numbers stay increasing");
    assert.ok(order.indexOf(prunedThrough) > order.indexOf(seqs.bOld.at(-1)!), "after the kept events below it");
    store.close();
  });

  it("a guest's stream uses that guest's watermark; a stream past it, or of one job, gets no notice", async () => {
    const { store, jobs, seqs, prunedThrough } = prunedHistory();
    const guestA = await stream(store, { guestId: "a" }, 0);
    assert.deepEqual(guestA.map((e) => [e.seq, isNotice(e)]), [[prunedThrough, true], ...seqs.aNew.map((s) => [s, false])]);
    assert.equal(guestA[0]!.guestId, "a");

    const guestB = await stream(store, { guestId: "b" }, 0);
    assert.equal(guestB.filter(isNotice).length, 0, "nothing of b was pruned");
    assert.deepEqual(guestB.map((e) => e.seq), seqs.bOld);

    const resumedPast = await stream(store, {}, prunedThrough);
    assert.equal(resumedPast.filter(isNotice).length, 0);
    assert.deepEqual(resumedPast.map((e) => e.seq), seqs.aNew);

    const oneJob = await stream(store, { jobId: jobs.aNew }, 0);
    assert.deepEqual(oneJob.map((e) => e.seq), seqs.aNew, "a job that exists lost no event");
    store.close();
  });

  it("over gRPC: an agent prunes at start-up (logging the counts); a watcher resuming from seq 0 is told, GetAgentInfo's last seq did not go back", async () => {
    const dir = mkdtempSync(join(tmpdir(), "lull-pruned-agent-"));
    dirs.push(dir);
    mkdirSync(join(dir, "data"), { recursive: true });
    const seeded = JobStore.open(join(dir, "data", DATABASE_FILE));
    const h = new History(seeded, Date.now());
    h.ended("demo", 200, { progress: 3 });
    h.ended("demo", 150);
    const lastSeq = seeded.events.lastSeq();
    seeded.close();

    const t = await startTestAgent({ dir, engine: new FakeEngine(), config: { retention: { jobs: { maxAgeDays: 30, keepLast: 0 } } } });
    try {
      await t.agent.retention.runOnce();
      const line = t.logs.find((l) => l.msg === "retention pruned ended jobs");
      assert.ok(line, "the start-up pass logged what it pruned");
      assert.equal(line.jobs, 2);
      assert.ok(Number(line.events) >= 8);
      assert.equal((await t.api.listJobs({ guestId: "demo", limit: 10 })).jobs.length, 0);
      assert.equal((await t.api.getAgentInfo()).lastEventSeq, lastSeq, "the newest number is kept");

      const got = await collectEvents(t, { afterSeq: 0 }, (e) => isNotice(e));
      assert.deepEqual(got.map((e) => [e.seq, e.errorCode]), [[lastSeq, EVENTS_PRUNED]], "the first message says what was pruned");

      const { job } = await t.api.startBackup({ guestId: "demo" });
      const resumed = await collectEvents(t, { guestId: "demo", afterSeq: 3 }, (e) => e.jobId === job!.id);
      assert.ok(isNotice(resumed[0]!), "a guest's watcher resuming from a pruned seq is told first");
      assert.ok(resumed[1]!.seq > lastSeq, "then the new job's events, numbered after every pruned one");
    } finally {
      await t.stop();
    }
  });
});
