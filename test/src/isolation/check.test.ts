// The write-isolation checker on hand-made evidence: each rule reports its violation, with the
// record and the service named, and clean evidence gives none.
import assert from "node:assert/strict";
import { test } from "node:test";
import { checkWriteIsolation, summarizeViolations, type ServiceEvidence } from "./check.js";
import type { AckedRecord } from "./ledger.js";

const SNAPSHOT_AT = Date.parse("2026-01-01T00:00:10.000Z");

/** Records 1..n, one every 10 ms ending 5 ms before `end`, each acknowledged 2 ms after its write. */
function acked(n: number, end = SNAPSHOT_AT): AckedRecord[] {
  return Array.from({ length: n }, (_, i) => {
    const at = end - 5 - (n - 1 - i) * 10;
    return { id: i + 1, at, ackedAt: at + 2 };
  });
}

const stored = (records: readonly AckedRecord[]) => records.map(({ id, at }) => ({ id, at }));

function evidence(service: string, acks: AckedRecord[], restored = stored(acks), problems: string[] = []): ServiceEvidence {
  return { service, acked: acks, restored, problems };
}

test("clean evidence: no violations", () => {
  const db = acked(50);
  const later = [...db, { id: 51, at: SNAPSHOT_AT + 100, ackedAt: SNAPSHOT_AT + 102 }];
  assert.deepEqual(checkWriteIsolation({ snapshotAt: new Date(SNAPSHOT_AT), services: [evidence("db", later, stored(db))] }), []);
});

test("a restored record written at or after the snapshot time is reported", () => {
  const acks = [...acked(3), { id: 4, at: SNAPSHOT_AT, ackedAt: SNAPSHOT_AT + 1 }, { id: 5, at: SNAPSHOT_AT + 7, ackedAt: SNAPSHOT_AT + 9 }];
  const violations = checkWriteIsolation({ snapshotAt: SNAPSHOT_AT, services: [evidence("journal", acks)] });
  assert.deepEqual(
    violations.map((v) => [v.service, v.kind, v.recordId]),
    [
      ["journal", "written-after-snapshot", 4],
      ["journal", "written-after-snapshot", 5],
    ],
  );
  assert.match(violations[1]!.detail, /record #5 written at 2026-01-01T00:00:10\.007Z, 7 ms after the snapshot time 2026-01-01T00:00:10\.000Z/);
  assert.deepEqual(summarizeViolations(violations), [`journal: written-after-snapshot × 2 (first: ${violations[0]!.detail})`]);
});

test("a record acknowledged before the cutoff but missing is reported; one acknowledged later may be missing", () => {
  const acks = acked(10);
  const restored = stored(acks).filter((r) => r.id !== 4 && r.id !== 10);
  const lateAck = { ...acks[9]!, ackedAt: SNAPSHOT_AT + 1 }; // durable only after the snapshot time
  const violations = checkWriteIsolation({ snapshotAt: SNAPSHOT_AT, services: [evidence("objects", [...acks.slice(0, 9), lateAck], restored)] });
  assert.deepEqual(
    violations.map((v) => [v.kind, v.recordId]),
    [["acknowledged-but-missing", 4]],
  );
  // An earlier cutoff (the quiesce start) asks less.
  const early = checkWriteIsolation({ snapshotAt: SNAPSHOT_AT, ackCutoff: acks[2]!.ackedAt, services: [evidence("objects", acks, restored)] });
  assert.deepEqual(early, []);
});

test("a restored record whose time differs from its acknowledgement is reported", () => {
  const acks = acked(3);
  const restored = stored(acks).map((r) => (r.id === 2 ? { ...r, at: r.at - 1 } : r));
  const violations = checkWriteIsolation({ snapshotAt: SNAPSHOT_AT, services: [evidence("db", acks, restored)] });
  assert.deepEqual(violations.map((v) => [v.kind, v.recordId]), [["record-mismatch", 2]]);
});

test("damage, a missing service and a missing snapshot time are violations", () => {
  const acks = acked(3);
  const violations = checkWriteIsolation({
    snapshotAt: SNAPSHOT_AT,
    services: [evidence("db", acks, stored(acks), ["PRAGMA integrity_check: row 3 missing from index"]), { service: "journal", acked: acks, restored: undefined, problems: [] }],
  });
  assert.deepEqual(
    violations.map((v) => [v.service, v.kind]),
    [
      ["db", "damaged"],
      ["journal", "service-missing"],
    ],
  );
  assert.deepEqual(
    checkWriteIsolation({ snapshotAt: undefined, services: [evidence("db", acks)] }).map((v) => v.kind),
    ["no-snapshot-time"],
  );
});
