import assert from "node:assert/strict";
import { test } from "node:test";
import { createLogger, leaseRenewalInterval, systemClock } from "@lull/shared";
import { LeaseHolds, type HeldLease } from "./lease-holds.js";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const quiet = createLogger({ name: "test", level: "silent" });
const lease = (stack: string, ttlMs = 600): HeldLease => ({ guestId: "101", stack, controllerId: `c-${stack}`, ttlMs });

test("held leases are renewed at a third of their TTL, those due together in one call, until released", async () => {
  const calls: string[][] = [];
  const holds = new LeaseHolds({ renew: async (list) => void calls.push(list.map((l) => l.stack)), clock: systemClock, log: quiet });
  try {
    const releaseA = holds.hold(lease("a"), () => assert.fail("not lost"));
    await sleep(20);
    holds.hold(lease("b"), () => assert.fail("not lost"));
    await sleep(leaseRenewalInterval(600) + 60);
    // b fell due 20 ms after a: within the slack, so renewed with it.
    assert.deepEqual(calls, [["a", "b"]]);
    releaseA();
    await sleep(leaseRenewalInterval(600));
    assert.deepEqual(calls.at(-1), ["b"], "a released is renewed no more");
    holds.release({ guestId: "101", stack: "b", controllerId: "c-b" });
    const count = calls.length;
    await sleep(leaseRenewalInterval(600) + 50);
    assert.equal(calls.length, count, "nothing held, nothing renewed");
    assert.equal(holds.size, 0);
  } finally {
    holds.close();
  }
});

test("a renewal that fails ends every stream that held those leases, and drops them", async () => {
  const lost: string[] = [];
  const holds = new LeaseHolds({
    renew: async () => {
      throw new Error("disk I/O error");
    },
    clock: systemClock,
    log: quiet,
  });
  try {
    holds.hold(lease("a"), (err) => lost.push(`a: ${(err as Error).message}`));
    holds.hold(lease("a"), (err) => lost.push(`a again: ${(err as Error).message}`));
    await sleep(leaseRenewalInterval(600) + 60);
    assert.deepEqual(lost.sort(), ["a again: disk I/O error", "a: disk I/O error"]);
    assert.equal(holds.size, 0);
  } finally {
    holds.close();
  }
});

test("a release after the hold was lost, and a second release, change nothing", () => {
  const holds = new LeaseHolds({ renew: async () => undefined, clock: systemClock, log: quiet });
  const release = holds.hold(lease("a"), () => undefined);
  holds.release({ guestId: "101", stack: "a", controllerId: "c-a" });
  release();
  release();
  assert.equal(holds.size, 0);
  holds.close();
});
