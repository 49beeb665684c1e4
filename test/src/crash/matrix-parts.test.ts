// Unit tests of the crash matrix's parts that need no daemons: the seeded fault schedule, the
// outage count from a stack's ledger, and the outage found in an app's records.
import assert from "node:assert/strict";
import { test } from "node:test";
import { countStopRuns, type LedgerEntry } from "../support/index.js";
import { outageOf } from "../e2e/timeline.js";
import { describeFault, faultFamily, faultFor, seededRandom } from "./faults.js";

const STACKS = ["gc/app", "gb/db"];

test("the fault schedule is reproducible from its seed and covers every template in its first 14 iterations", () => {
  const run = (seed: number) => {
    const rng = seededRandom(seed);
    return Array.from({ length: 40 }, (_, i) => describeFault(faultFor(i, rng, STACKS, 2_500)));
  };
  assert.deepEqual(run(7), run(7));
  assert.notDeepEqual(run(7), run(8));
  const rng = seededRandom(1);
  const families = new Set(Array.from({ length: 14 }, (_, i) => faultFamily(faultFor(i, rng, STACKS, 2_500))));
  for (const phase of ["queued", "quiescing", "snapshotting", "snapshotted", "archiving", "done"]) assert.ok(families.has(`agent-failpoint:${phase}`), phase);
  for (const point of ["after-marker", "after-stop", "before-resume"]) assert.ok(families.has(`controller-failpoint:${point}`), point);
  for (const kind of ["agent-kill", "controller-kill", "all-kill", "agent-down-past-deadline", "none"]) assert.ok(families.has(kind), kind);
});

test("outages from a stop/start ledger: stops repeated while down are one outage, a stop after a start is another", () => {
  const e = (verb: "start" | "stop", at: number): LedgerEntry => ({ verb, event: "begin", at, pid: 1 });
  assert.equal(countStopRuns([e("stop", 1), e("start", 2)]), 1);
  assert.equal(countStopRuns([e("stop", 1), e("stop", 2), e("start", 3)]), 1, "a controller that crashed mid-stop and stopped again");
  assert.equal(countStopRuns([e("stop", 1), e("start", 2), e("stop", 3), e("start", 4)]), 2);
  assert.equal(countStopRuns([e("stop", 1), e("start", 2), e("stop", 3)], 2), 1, "only entries since the given time");
});

test("the app's outage is the longest gap between its records since a time", () => {
  const records = [0, 20, 40, 60, 900, 920, 940].map((at, i) => ({ id: i + 1, at }));
  assert.deepEqual(outageOf(records, 0), { lastBefore: { id: 4, at: 60 }, firstAfter: { id: 5, at: 900 } });
  assert.throws(() => outageOf(records, 10_000), /no records/);
});
