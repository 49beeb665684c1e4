// notificationFor, table-tested: which fact becomes which notification, with which severity,
// guests, stacks and words (the pure part; delivery is notify.test.ts and test/src/notify/).
import { strict as assert } from "node:assert";
import { describe, it } from "node:test";
import { Consistency, Phase, SnapshotMode } from "@lull/proto";
import type { RestorePoint } from "../backups/restore-point.js";
import type { Fact, ScheduleRef } from "../observe/facts.js";
import type { TickRecord } from "../schedules/store.js";
import type { VerifyRecord } from "../verify/machine.js";
import { notificationFor, type Notification } from "./notification.js";

const T = Date.parse("2026-12-01T02:00:00Z");
const DAY = 86_400_000;

const run = (patch: Partial<VerifyRecord>): VerifyRecord => ({
  id: "v-1", pointId: "b-20261201", guestId: "app1", phase: "failed", startedAt: T, endedAt: T + 60_000,
  restoreMs: 1, checkMs: 1, teardownMs: 1, reason: "", verdict: "failed", results: [], ...patch,
});
const point = { id: "b-20261201", createdAt: new Date(T - 3_600_000), guestId: "app1", consistency: Consistency.CONSISTENCY_APP, mode: SnapshotMode.SNAPSHOT_MODE_COPY } as RestorePoint;
const tick = (at: number, outcome: TickRecord["outcome"], reason: string, patch: Partial<TickRecord> = {}): TickRecord => ({
  scheduleId: "nightly", tickAt: at, outcome, reason, node: "pve1", recordedAt: T, startedAt: undefined, endedAt: undefined, runRef: "", errorCode: "", ...patch,
});
const nightly: ScheduleRef = { id: "nightly", action: "backup", guests: ["101", "102"], stacks: ["shop"] };
const weekly: ScheduleRef = { id: "weekly-verify", action: "verify", guests: ["app1"], stacks: ["db", "files"] };

type Expect = Partial<Notification> & { messageMatches?: RegExp };
const cases: Array<[string, Fact, Expect | undefined]> = [
  [
    "a verification whose check failed: error naming the point, the failed stack and why",
    { kind: "verification-ended", point, checkedStacks: ["db", "files"], run: run({ results: [
      { stack: "db", check: "postgres", ok: false, reason: "SELECT count(*) FROM orders: relation does not exist", durationMs: 1, evidence: {} },
      { stack: "files", check: "command", ok: true, reason: "", durationMs: 1, evidence: {} },
    ] }) },
    {
      severity: "error", event: "verification-failed", guest: "app1", guests: ["app1"], stacks: ["db"], jobId: "v-1", code: "LULL_E_VERIFY_FAILED",
      timestamp: new Date(T + 60_000).toISOString(),
      messageMatches: /^Restore point b-20261201 \(made 2026-12-01T01:00:00.000Z\) failed verification v-1: stack db failed its postgres check: SELECT count\(\*\) FROM orders: relation does not exist$/,
    },
  ],
  [
    "a verification that failed before any check (the restore): every checked stack, the run's reason",
    { kind: "verification-ended", point: undefined, checkedStacks: ["db", "files"], run: run({ reason: "tar: short read" }) },
    { severity: "error", event: "verification-failed", stacks: ["db", "files"], messageMatches: /b-20261201 \(no longer in the catalog\) failed verification v-1: no stack was checked \(db, files\): tar: short read$/ },
  ],
  ["a passed verification says nothing", { kind: "verification-ended", point, checkedStacks: ["db"], run: run({ phase: "passed", verdict: "passed" }) }, undefined],
  ["a cancelled verification says nothing", { kind: "verification-ended", point, checkedStacks: ["db"], run: run({ phase: "cancelled", verdict: "cancelled" }) }, undefined],
  [
    "a stale stack that was verified once: warning with the age and the last pass",
    { kind: "verification-stale", guestId: "app1", stack: "db", lastVerified: { pointId: "b-old", at: T - 9 * DAY }, since: T - 9 * DAY, staleAfterMs: 7 * DAY, at: T },
    {
      severity: "warning", event: "verification-stale", guest: "app1", guests: ["app1"], stacks: ["db"], jobId: "", code: "", timestamp: new Date(T).toISOString(),
      messageMatches: /^No restore point of stack db \(guest app1\) passed verification for 9 days, more than verify.staleAfterDays \(7\); the last pass was point b-old on 2026-11-22T02:00:00.000Z$/,
    },
  ],
  [
    "a stale stack never verified: counted from the first point",
    { kind: "verification-stale", guestId: "app1", stack: "db", lastVerified: undefined, since: T - 8 * DAY, staleAfterMs: 7 * DAY, at: T },
    { severity: "warning", event: "verification-stale", messageMatches: /for 8 days, .*; it was never verified \(its guest's first point was made 2026-11-23T02:00:00.000Z\)$/ },
  ],
  [
    "three ticks missed during a downtime and one skipped: ONE warning with the counts and the reasons, every guest of the schedule",
    {
      kind: "schedule-not-run", schedule: nightly, at: T,
      ticks: [tick(T - 3 * DAY, "missed", "the agent was not running"), tick(T - 2 * DAY, "missed", "the agent was not running"), tick(T - DAY, "missed", "the agent was not running"), tick(T, "skipped", "the previous run is still going")],
    },
    {
      severity: "warning", event: "schedule-missed", guest: "101,102", guests: ["101", "102"], stacks: ["shop"], jobId: "schedule:nightly", code: "",
      title: "Schedule nightly on pve1 did not run 4 ticks",
      messageMatches: /^Schedule nightly \(backup of 101, 102\): ticks 2026-11-28T02:00:00.000Z to 2026-12-01T02:00:00.000Z did not run: 3 missed \(the agent was not running\); 1 skipped \(the previous run is still going\)$/,
    },
  ],
  [
    "one tick skipped: singular",
    { kind: "schedule-not-run", schedule: nightly, at: T, ticks: [tick(T, "skipped", "the lease is held by another node")] },
    { title: "Schedule nightly on pve1 did not run 1 tick", messageMatches: /: tick 2026-12-01T02:00:00.000Z did not run: 1 skipped \(the lease is held by another node\)$/ },
  ],
  [
    "a scheduled verify run that failed: error with its code and reason",
    { kind: "schedule-run-failed", schedule: weekly, tick: tick(T, "failed", "verification failed: app1: point b-1 failed (db: x)", { endedAt: T + 5_000, errorCode: "LULL_E_COMMAND_FAILED", scheduleId: "weekly-verify" }) },
    {
      severity: "error", event: "schedule-failed", guest: "app1", guests: ["app1"], stacks: ["db", "files"], jobId: "schedule:weekly-verify", code: "LULL_E_COMMAND_FAILED",
      title: "Scheduled verify weekly-verify on pve1 failed", timestamp: new Date(T + 5_000).toISOString(),
      messageMatches: /^Tick 2026-12-01T02:00:00.000Z of schedule weekly-verify \(verify of app1\) failed: LULL_E_COMMAND_FAILED: verification failed: app1: point b-1 failed \(db: x\)$/,
    },
  ],
];

describe("notificationFor", () => {
  for (const [what, fact, expected] of cases) {
    it(what, () => {
      const n = notificationFor(fact, "pve1");
      if (expected === undefined) return assert.equal(n, undefined);
      assert.ok(n, "a notification");
      const { messageMatches, ...fields } = expected;
      for (const [k, v] of Object.entries(fields)) assert.deepEqual(n[k as keyof Notification], v, k);
      if (messageMatches) assert.match(n.message, messageMatches);
      assert.equal(n.node, "pve1");
      assert.ok(n.title.length > 0 && !Number.isNaN(Date.parse(n.timestamp)));
    });
  }

  it("a failed backup still carries its one guest in guests (what matchers by guest read)", () => {
    const job = { id: "j-1", guestId: "101", phase: Phase.PHASE_FAILED, failedIn: Phase.PHASE_SNAPSHOTTING, errorCode: "LULL_E_SNAPSHOT_FAILED", errorMessage: "x", stacks: [], finishedAt: new Date(T) };
    const n = notificationFor({ kind: "job-ended", job: job as never }, "pve1");
    assert.deepEqual([n?.event, n?.guest, n?.guests], ["backup-failed", "101", ["101"]]);
  });
});
