// The quiesce barrier reads the job once per published batch: K acknowledgements that share one
// commit (a burst of controllers, one group commit) cost one look at the store, not K.
import { strict as assert } from "node:assert";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { EventKind, QuiescePolicy } from "@lull/proto";
import { silentLogger, systemClock } from "@lull/shared";
import { EventBus } from "../events/bus.js";
import { waitForBarrier } from "./barrier.js";
import { eventFor, newJobRecord } from "./job.js";
import { newJobId } from "./job-id.js";
import { JobLedger } from "./ledger.js";
import { JobStore } from "./store.js";

test("acknowledgements committed together cost the barrier one read of the job", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "lull-barrier-"));
  const store = JobStore.open(join(dir, "agent.db"));
  t.after(() => {
    store.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const bus = new EventBus(silentLogger());
  const ledger = new JobLedger({ store, bus, log: silentLogger(), clock: systemClock });
  const record = newJobRecord({
    id: newJobId(Date.now()),
    guestId: "g1",
    engine: "native",
    policy: QuiescePolicy.QUIESCE_POLICY_FAIL,
    idempotencyKey: "k",
    quiesceTimeoutMs: 60_000,
    requestedBy: "test",
    now: Date.now(),
  });
  const jobId = ledger.create(record, eventFor(record, EventKind.EVENT_KIND_PHASE)).job.id;
  const stacks = Array.from({ length: 20 }, (_, i) => `s${String(i).padStart(2, "0")}`);
  ledger.apply(jobId, { type: "start-quiesce", stacks });

  let reads = 0;
  const counted = new Proxy(store, {
    get: (target, key, receiver) =>
      key === "getJob"
        ? (id: string) => {
            reads += 1;
            return target.getJob(id);
          }
        : Reflect.get(target, key, receiver),
  });
  const signal = new AbortController().signal;
  const outcome = waitForBarrier({ jobId, store: counted, bus, clock: systemClock, timeoutMs: 60_000, signal });
  assert.equal(reads, 1, "one look when the wait starts");
  // All but one together: the barrier still waits, after one look.
  ledger.ledger.commit(() => {
    for (const stack of stacks.slice(1)) ledger.apply(jobId, { type: "stack-acknowledged", stack, at: Date.now() });
  });
  await new Promise((r) => setImmediate(r));
  assert.equal(reads, 2, "one look after the batch of 19 acknowledgements");
  ledger.apply(jobId, { type: "stack-acknowledged", stack: stacks[0]!, at: Date.now() });
  assert.deepEqual(await outcome, { kind: "all-quiesced" });
  assert.equal(reads, 3);
});
