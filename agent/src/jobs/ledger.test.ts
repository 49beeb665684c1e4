import { strict as assert } from "node:assert";
import { test } from "node:test";
import { EventKind, type Event } from "@lull/proto";
import { eventFor } from "./job.js";
import { openTempJobLedger } from "./testing-ledger.js";

test("a note on an ended job is stored with its events and reaches a watcher following it live; the job stays as it was", (t) => {
  const { store, bus, ledger, createJob } = openTempJobLedger(t, "lull-ledger-");
  const jobId = createJob("101", "vzdump");
  const ended = ledger.apply(jobId, { type: "fail", code: "LULL_E_AGENT_RESTARTED", message: "agent restarted" });
  assert.throws(() => ledger.apply(jobId, { type: "note", message: "late" }), /already ended/);

  const live: Event[] = [];
  bus.subscribe({ jobId }, (e) => live.push(e));
  ledger.noteEnded(ended, eventFor(ended, EventKind.EVENT_KIND_NOTE, { message: "guest 101: started again by the crash cleanup" }));
  assert.deepEqual(live.map((e) => e.message), ["guest 101: started again by the crash cleanup"]);
  assert.equal(live[0]?.jobId, jobId);
  const stored = store.events.after({ jobId, afterSeq: 0, limit: 100 });
  assert.equal(stored.at(-1)?.seq, live[0]?.seq, "the published note is the stored one");
  assert.deepEqual(store.getJob(jobId), ended, "the job is unchanged");
});

test("an acknowledgement writes the acknowledged stack alone: the rows it changes do not grow with the barrier's stacks", (t) => {
  const { store, ledger, createJob } = openTempJobLedger(t, "lull-ledger-");
  const changes = () => (store.connection.prepare("SELECT total_changes() AS n").get() as { n: number }).n;
  const ackCost = (guestId: string, stackCount: number) => {
    const jobId = createJob(guestId);
    const stacks = Array.from({ length: stackCount }, (_, i) => `s${String(i).padStart(3, "0")}`);
    ledger.apply(jobId, { type: "start-quiesce", stacks });
    const before = changes();
    const acked = ledger.apply(jobId, { type: "stack-acknowledged", stack: "s001", at: Date.now() });
    const cost = changes() - before;
    assert.deepEqual(store.getJob(jobId), acked, "the stored job is the one the ledger returned");
    return cost;
  };
  assert.equal(ackCost("g3", 3), ackCost("g50", 50));
});
