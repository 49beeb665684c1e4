// The job store on a real SQLite file: migrations, idempotency, one job per guest (also at the
// database level), fencing between agent starts, events and stack leases.
import { strict as assert } from "node:assert";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import Database from "better-sqlite3";
import { EventKind, Phase, QuiescePolicy } from "@lull/proto";
import { LullError } from "@lull/shared";
import { eventFor, newJobRecord, type JobRecord } from "./job.js";
import { newJobId } from "./job-id.js";
import { transition } from "./machine.js";
import { MIGRATIONS } from "../ledger/migrations.js";
import { JobStore } from "./store.js";

const T0 = Date.parse("2026-11-22T10:00:00Z");
let dir: string;

before(() => {
  dir = mkdtempSync(join(tmpdir(), "lull-store-"));
});
after(() => rmSync(dir, { recursive: true, force: true }));

function job(guestId: string, key: string, now = T0): JobRecord {
  return newJobRecord({
    id: newJobId(now),
    guestId,
    engine: "native",
    policy: QuiescePolicy.QUIESCE_POLICY_FAIL,
    idempotencyKey: key,
    quiesceTimeoutMs: 1000,
    requestedBy: "test",
    now,
  });
}

function create(store: JobStore, record: JobRecord) {
  return store.createJob(record, [eventFor(record, EventKind.EVENT_KIND_PHASE)], T0);
}

function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    return err instanceof LullError ? err.code : `non-LullError: ${String((err as { code?: string }).code ?? err)}`;
  }
  return "(no error)";
}

describe("job store", () => {
  it("migrates an empty file, and re-opening keeps the data, applies nothing twice and starts a new epoch", () => {
    const path = join(dir, "migrate.db");
    const first = JobStore.open(path);
    const record = job("demo", "k-migrate");
    create(first, record);
    assert.equal(first.epoch, 1);
    first.close();

    const raw = new Database(path, { readonly: true });
    assert.equal(raw.pragma("user_version", { simple: true }), MIGRATIONS.at(-1)?.version);
    assert.equal(raw.pragma("journal_mode", { simple: true }), "wal");
    const tables = (raw.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").all() as Array<{ name: string }>).map((r) => r.name);
    for (const t of ["agent_epochs", "events", "job_stacks", "jobs", "stacks"]) assert.ok(tables.includes(t), `table ${t}`);
    raw.close();

    const second = JobStore.open(path);
    assert.equal(second.epoch, 2);
    assert.equal(second.getJob(record.id)?.idempotencyKey, "k-migrate");
    assert.equal(second.events.lastSeq(), 1);
    second.close();
  });

  it("refuses a database written by a newer agent", () => {
    const path = join(dir, "newer.db");
    const raw = new Database(path);
    raw.pragma("user_version = 999");
    raw.close();
    assert.throws(() => JobStore.open(path), /newer than this agent understands/);
  });

  it("same idempotency key: the same guest gets the existing job, another guest a conflict", () => {
    const store = JobStore.open(join(dir, "idem.db"));
    const first = create(store, job("demo", "key-1"));
    assert.equal(first.created, true);
    assert.equal(first.events.length, 1);
    const again = create(store, job("demo", "key-1"));
    assert.equal(again.created, false);
    assert.equal(again.job.id, first.job.id);
    assert.equal(again.events.length, 0);
    assert.equal(codeOf(() => create(store, job("other", "key-1"))), "LULL_E_IDEMPOTENCY_CONFLICT");
    store.close();
  });

  it("one job per guest that has not ended: the store says GUEST_BUSY and the database itself refuses a second row", () => {
    const path = join(dir, "busy.db");
    const store = JobStore.open(path);
    const first = create(store, job("demo", "a")).job;
    assert.equal(codeOf(() => create(store, job("demo", "b"))), "LULL_E_GUEST_BUSY");
    assert.equal(create(store, job("other", "c")).created, true, "another guest is not blocked");

    const raw = new Database(path);
    const insert = () =>
      raw
        .prepare(
          `INSERT INTO jobs (id, guest_id, idempotency_key, phase, engine, policy, created_at, updated_at, phase_since, quiesce_timeout_ms, epoch)
           VALUES (?, 'demo', ?, 'archiving', 'native', 1, 0, 0, 0, 1000, 1)`,
        )
        .run(newJobId(T0), "raw-key");
    assert.throws(insert, (err: { code?: string }) => err.code === "SQLITE_CONSTRAINT_UNIQUE");

    const failed = transition(first, { type: "fail", code: "LULL_E_INTERNAL", message: "x" }, T0 + 1);
    store.saveJob(failed.job, [], T0 + 1);
    assert.doesNotThrow(insert, "after the first job ended, another may start");
    raw.close();
    store.close();
  });

  it("fencing: a writer of an older agent start cannot overwrite a job a newer start took over", () => {
    const path = join(dir, "fence.db");
    const old = JobStore.open(path);
    const record = create(old, job("demo", "fence")).job;
    const quiescing = transition(record, { type: "start-quiesce", stacks: [] }, T0 + 1).job;
    old.saveJob(quiescing, [], T0 + 1);

    const newer = JobStore.open(path);
    assert.ok(newer.epoch > old.epoch);
    const settled = transition(quiescing, { type: "fail", code: "LULL_E_AGENT_RESTARTED", message: "restart" }, T0 + 2);
    newer.saveJob(settled.job, [], T0 + 2);

    const stale = transition(quiescing, { type: "cancel", reason: "stale" }, T0 + 3);
    assert.equal(codeOf(() => old.saveJob(stale.job, [eventFor(stale.job, EventKind.EVENT_KIND_PHASE)], T0 + 3)), "LULL_E_AGENT_RESTARTED");
    assert.equal(newer.getJob(record.id)?.phase, Phase.PHASE_FAILED);
    assert.equal(newer.events.after({ afterSeq: 0, jobId: record.id, limit: 10 }).length, 1, "the stale write's event was rolled back");
    old.close();
    newer.close();
  });

  it("events get increasing sequence numbers and can be read after a seq, by guest and by job", () => {
    const store = JobStore.open(join(dir, "events.db"));
    const a = create(store, job("ga", "ea")).job;
    const b = create(store, job("gb", "eb")).job;
    store.saveJob(a, [eventFor(a, EventKind.EVENT_KIND_NOTE, { message: "one" })], T0 + 5);
    const all = store.events.after({ afterSeq: 0, limit: 100 });
    assert.deepEqual(all.map((e) => e.seq), [1, 2, 3]);
    assert.deepEqual(store.events.after({ afterSeq: 1, guestId: "ga", limit: 100 }).map((e) => e.message), ["one"]);
    assert.deepEqual(store.events.after({ afterSeq: 0, jobId: b.id, limit: 100 }).map((e) => e.seq), [2]);
    assert.deepEqual(all[2]?.at, new Date(T0 + 5));
    store.close();
  });

  it("stack leases: alive until they expire, renewed by the same controller, taken over by a new one", () => {
    const store = JobStore.open(join(dir, "leases.db"));
    assert.equal(store.renewLease({ guestId: "demo", stack: "web", controllerId: "c1", ttlMs: 1000 }, T0), undefined);
    store.renewLease({ guestId: "demo", stack: "db", controllerId: "c2", ttlMs: 5000 }, T0);
    assert.deepEqual(store.liveStacks("demo", T0 + 999), ["db", "web"]);
    assert.deepEqual(store.liveStacks("demo", T0 + 1000), ["db"]);
    assert.equal(store.renewLease({ guestId: "demo", stack: "web", controllerId: "c3", ttlMs: 1000 }, T0 + 2000), "c1");
    assert.deepEqual(store.liveStacks("demo", T0 + 2500), ["db", "web"]);
    assert.equal(store.dropLease("demo", "web", "c1"), false, "only the holder can unregister");
    assert.equal(store.dropLease("demo", "web", "c3"), true);
    assert.deepEqual(store.liveStacks("demo", T0 + 2500), ["db"]);
    store.close();
  });
});
