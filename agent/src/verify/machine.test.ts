import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { decideVerification } from "./decide.js";
import { newVerifyRecord, transition, type VerifyEvent, type VerifyRecord } from "./machine.js";

const ok = { stack: "db", check: "postgres", ok: true, reason: "", durationMs: 5, evidence: {} };
const bad = { ...ok, ok: false, reason: "PostgreSQL ran crash recovery" };

function run(events: VerifyEvent[]): VerifyRecord {
  return events.reduce((r, e, i) => transition(r, e, 1000 + i), newVerifyRecord("v-1", "b-1", "g", 1000));
}

describe("verification machine (every path goes through tearing-down)", () => {
  const table: Array<[string, VerifyEvent[], string, string]> = [
    ["passes", [{ type: "restored", ms: 1 }, { type: "checked", results: [ok], ms: 2 }, { type: "torn-down", ms: 3 }], "passed", ""],
    ["a failed check", [{ type: "restored", ms: 1 }, { type: "checked", results: [ok, { ...bad, stack: "web" }], ms: 2 }, { type: "torn-down", ms: 3 }], "failed", "web: PostgreSQL ran crash recovery"],
    ["restore fails", [{ type: "failed", reason: "archive hash mismatch" }, { type: "torn-down", ms: 3 }], "failed", "archive hash mismatch"],
    ["cancelled while checking", [{ type: "restored", ms: 1 }, { type: "cancelled", reason: "verification cancelled" }, { type: "torn-down", ms: 3 }], "cancelled", "verification cancelled"],
    ["teardown fails after a pass", [{ type: "restored", ms: 1 }, { type: "checked", results: [ok], ms: 2 }, { type: "failed", reason: "teardown failed: busy" }, { type: "torn-down", ms: 3 }], "failed", "teardown failed: busy"],
    ["interrupted (agent crash)", [{ type: "restored", ms: 1 }, { type: "interrupted" }], "failed", "the agent stopped during checking; its replica was torn down at the next start"],
  ];
  for (const [name, events, phase, reason] of table) {
    it(name, () => {
      const r = run(events);
      assert.equal(r.phase, phase);
      assert.equal(r.reason, reason);
      assert.notEqual(r.endedAt, undefined);
    });
  }
  it("refuses events out of order and after the end", () => {
    assert.throws(() => run([{ type: "checked", results: [ok], ms: 1 }]), /event checked in phase restoring/);
    assert.throws(() => run([{ type: "failed", reason: "x" }, { type: "torn-down", ms: 1 }, { type: "restored", ms: 1 }]), /in phase failed/);
  });
});

describe("verification decision (no loop)", () => {
  const base = { newestPointId: "b-2", now: 100 * 3600_000, outdatedAfterMs: 30 * 24 * 3600_000, retryFailedAfterMs: 0 };
  it("verifies a new point, not a verified one, again once outdated", () => {
    assert.equal(decideVerification({ ...base, last: undefined }).verify, true);
    assert.equal(decideVerification({ ...base, last: { phase: "passed", endedAt: base.now - 1000 } }).verify, false);
    assert.equal(decideVerification({ ...base, now: base.now + base.outdatedAfterMs, last: { phase: "passed", endedAt: base.now } }).verify, true);
  });
  it("a failed or torn-down run is retried only by policy", () => {
    assert.equal(decideVerification({ ...base, last: { phase: "failed", endedAt: 0 } }).verify, false);
    assert.equal(decideVerification({ ...base, retryFailedAfterMs: 3600_000, last: { phase: "failed", endedAt: base.now - 2 * 3600_000 } }).verify, true);
    assert.equal(decideVerification({ ...base, retryFailedAfterMs: 3600_000, last: { phase: "failed", endedAt: base.now - 60_000 } }).verify, false);
    assert.equal(decideVerification({ ...base, last: { phase: "running", endedAt: undefined } }).verify, false);
    assert.equal(decideVerification({ ...base, newestPointId: undefined, last: undefined }).verify, false);
  });
});
