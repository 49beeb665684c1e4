// Group commit: changes queued in one turn of the event loop commit as one unit (one transaction),
// each in its own savepoint; a failing change rejects alone and leaves nothing behind; nothing is
// published before the unit committed. On a real SQLite store.
import { strict as assert } from "node:assert";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { EventKind, QuiescePolicy, type Event } from "@lull/proto";
import { LullError, silentLogger, systemClock } from "@lull/shared";
import { EventBus } from "../events/bus.js";
import { eventFor, newJobRecord } from "../jobs/job.js";
import { newJobId } from "../jobs/job-id.js";
import { JobLedger } from "../jobs/ledger.js";
import { JobStore } from "../jobs/store.js";
import { GroupCommit } from "./group-commit.js";

const dirs: string[] = [];
after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

function setup() {
  const dir = mkdtempSync(join(tmpdir(), "lull-group-commit-"));
  dirs.push(dir);
  const store = JobStore.open(join(dir, "agent.db"));
  const log = silentLogger();
  const bus = new EventBus(log);
  const ledger = new JobLedger({ store, bus, log, clock: systemClock });
  const record = newJobRecord({
    id: newJobId(Date.now()), guestId: "demo", engine: "native", policy: QuiescePolicy.QUIESCE_POLICY_FAIL, idempotencyKey: "k",
    quiesceTimeoutMs: 1000, requestedBy: "", now: Date.now(),
  });
  ledger.create(record, eventFor(record, EventKind.EVENT_KIND_PHASE));
  return { store, bus, ledger, jobId: record.id };
}

describe("group commit", () => {
  it("changes queued together share one transaction; a failing one rejects alone and is rolled back; events wait for the commit", async () => {
    const { store, bus, ledger, jobId } = setup();
    const together = new GroupCommit(ledger.ledger);
    const published: Event[] = [];
    bus.subscribe({}, (e) => published.push(e));
    const before = store.events.lastSeq();
    const note = (m: string) => () => ledger.apply(jobId, { type: "note", message: m });
    const p1 = together.run(note("one"));
    const p2 = together.run(() => {
      note("two, rolled back")();
      throw new LullError("LULL_E_INVALID_ARGUMENT", "this change fails after writing");
    });
    const p3 = together.run(() => store.renewLease({ guestId: "demo", stack: "web", controllerId: "c1", ttlMs: 10_000 }, Date.now()));
    const p4 = together.run(note("four"));
    assert.equal(published.length, 0, "nothing is published before the unit runs");
    const [r1, r2, r3, r4] = await Promise.allSettled([p1, p2, p3, p4]);
    assert.equal(r1.status, "fulfilled");
    assert.equal(r2.status, "rejected");
    assert.match(String((r2 as PromiseRejectedResult).reason.message), /fails after writing/);
    assert.equal(r3.status, "fulfilled");
    assert.equal(r4.status, "fulfilled");
    assert.deepEqual(together.stats, { units: 1, changes: 4 }, "one unit for the four changes");
    const stored = store.events.after({ afterSeq: before, limit: 100 }).map((e) => e.message);
    assert.deepEqual(stored, ["one", "four"], "the failed change left no event");
    assert.deepEqual(published.map((e) => e.message), ["one", "four"]);
    assert.deepEqual(store.liveStacks("demo", Date.now()), ["web"]);
    // A later call gets a unit of its own.
    await together.run(note("five"));
    assert.equal(together.stats.units, 2);
    store.close();
  });

  it("a unit that need not be durable commits lease renewals with synchronous NORMAL, then restores FULL; events are refused there", async () => {
    const { store, ledger, jobId } = setup();
    const leases = new GroupCommit(ledger.ledger, { durable: false });
    const db = store.connection;
    assert.equal(db.pragma("synchronous", { simple: true }), 2, "FULL before");
    let during = -1;
    await leases.run(() => {
      during = db.pragma("synchronous", { simple: true }) as number;
      return store.renewLease({ guestId: "demo", stack: "web", controllerId: "c1", ttlMs: 10_000 }, Date.now());
    });
    assert.equal(during, 1, "NORMAL while the renewals commit");
    assert.equal(db.pragma("synchronous", { simple: true }), 2, "FULL again after");
    assert.deepEqual(store.liveStacks("demo", Date.now()), ["web"]);
    const before = store.events.lastSeq();
    const refused = await Promise.allSettled([leases.run(() => ledger.apply(jobId, { type: "note", message: "not here" }))]);
    assert.equal(refused[0]!.status, "rejected");
    assert.equal(store.events.lastSeq(), before, "nothing of it was committed");
    assert.equal(db.pragma("synchronous", { simple: true }), 2);
    store.close();
  });

  it("flushNow commits what is queued at once (a later call that is not batched sees it)", async () => {
    const { store, ledger } = setup();
    const leases = new GroupCommit(ledger.ledger, { durable: false });
    const renewed = leases.run(() => store.renewLease({ guestId: "demo", stack: "db", controllerId: "c2", ttlMs: 10_000 }, Date.now()));
    assert.deepEqual(store.liveStacks("demo", Date.now()), [], "queued, not yet committed");
    leases.flushNow();
    assert.deepEqual(store.liveStacks("demo", Date.now()), ["db"]);
    await renewed;
    leases.flushNow();
    assert.deepEqual(leases.stats, { units: 1, changes: 1 });
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(leases.stats, { units: 1, changes: 1 }, "the scheduled flush finds nothing left");
    store.close();
  });

  it("a unit whose commit fails rejects every change in it", async () => {
    const { store, ledger, jobId } = setup();
    const together = new GroupCommit(ledger.ledger);
    store.close();
    const results = await Promise.allSettled([together.run(() => ledger.apply(jobId, { type: "note", message: "x" })), together.run(() => 1)]);
    assert.ok(results.every((r) => r.status === "rejected"), "the closed database fails the whole unit");
  });
});
