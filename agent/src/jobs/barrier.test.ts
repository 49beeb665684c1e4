// The quiesce barrier reads the job once per published batch: K acknowledgements that share one
// commit (a burst of controllers, one group commit) cost one look at the store, not K.
import { strict as assert } from "node:assert";
import { test } from "node:test";
import { systemClock } from "@lull/shared";
import { waitForBarrier } from "./barrier.js";
import { openTempJobLedger } from "./testing-ledger.js";

test("acknowledgements committed together cost the barrier one read of the job", async (t) => {
  const { store, bus, ledger, createJob } = openTempJobLedger(t, "lull-barrier-");
  const jobId = createJob("g1");
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
