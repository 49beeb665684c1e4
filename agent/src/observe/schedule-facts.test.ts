// Schedule facts over a real tick store and event bus: a downtime's missed ticks are ONE fact
// per schedule (counts and reasons read back from the store), a later skip another, a failed
// verify/prune run a `schedule-run-failed`, a failed backup run or a run ended by the agent
// stopping none; the guests and stacks are the schedule's.
import { strict as assert } from "node:assert";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { silentLogger, type Clock } from "@lull/shared";
import { BackupStore } from "../backups/store.js";
import { EventBus } from "../events/bus.js";
import { AgentDatabase } from "../ledger/agent-database.js";
import { ScheduleTickStore } from "../schedules/store.js";
import { testConfig } from "../testing/agent-harness.js";
import { FactFeed, type Fact } from "./facts.js";
import { feedScheduleFacts } from "./schedule-facts.js";

const dir = mkdtempSync(join(tmpdir(), "lull-sched-facts-"));
after(() => rmSync(dir, { recursive: true, force: true }));
const HOUR = 3_600_000;
const T = Date.parse("2026-12-01T00:00:00Z");
const turn = () => new Promise((r) => setImmediate(r));

describe("schedule facts", () => {
  it("a batch of missed ticks is one fact per schedule; skips, failed verify runs and stops as said", async () => {
    const config = testConfig(dir, {
      guests: [
        { id: "101", driver: "dir", snapshot: "copy", volumes: [{ name: "data", path: dir }] },
        { id: "102", driver: "dir", snapshot: "copy", volumes: [{ name: "data", path: dir }] },
      ],
      config: {
        verify: { checks: [{ guest: "102", stack: "db", check: { type: "command", argv: ["true"] } }] },
        schedules: {
          list: [
            { id: "hourly", action: "backup", schedule: "hourly", timeZone: "UTC", all: true },
            { id: "verify", action: "verify", schedule: "daily", timeZone: "UTC", guests: ["102"] },
          ],
        },
      },
    });
    const db = AgentDatabase.open(join(dir, "agent.db"));
    const bus = new EventBus(silentLogger());
    const clock: Clock & { at: number } = { at: T, now: () => clock.at, sleep: () => Promise.resolve() };
    const ticks = new ScheduleTickStore(db, "pve1", (events) => bus.publish(events));
    // A tick recorded before the feed started is history, never told.
    ticks.notRun("hourly", T - 10 * HOUR, "missed", "old", T - HOUR);
    clock.at = T;
    const facts: Fact[] = [];
    const feed = new FactFeed(silentLogger());
    feed.subscribe((f) => facts.push(f));
    const stop = feedScheduleFacts({ config, bus, ticks: new ScheduleTickStore(db, "pve1"), backups: new BackupStore(db), feed, clock });

    // The agent was down 5 hours: five missed ticks recorded at once, as the engine's start does.
    for (let h = 5; h >= 1; h--) ticks.notRun("hourly", T - h * HOUR, "missed", "the agent was not running", clock.now());
    await turn();
    assert.equal(facts.length, 1, "one notification's worth for the whole batch");
    const f0 = facts[0]!;
    assert.ok(f0.kind === "schedule-not-run");
    assert.deepEqual(f0.ticks.map((t) => [t.tickAt, t.outcome, t.reason]), [5, 4, 3, 2, 1].map((h) => [T - h * HOUR, "missed", "the agent was not running"]));
    assert.deepEqual(f0.schedule, { id: "hourly", action: "backup", guests: ["101", "102"], stacks: [] }, "every guest the schedule covers");

    // A skip an hour later: its own fact with that tick only; the same record is never told twice.
    clock.at = T + HOUR;
    ticks.notRun("hourly", T, "skipped", "the previous run (tick …) is still going", clock.now());
    await turn();
    ticks.notRun("hourly", T, "skipped", "a second record of the same tick is refused", clock.now());
    await turn();
    assert.equal(facts.length, 2);
    assert.ok(facts[1]!.kind === "schedule-not-run" && facts[1]!.ticks.length === 1 && facts[1]!.ticks[0]!.outcome === "skipped");

    // A scheduled verify run fails: schedule-run-failed with the store's code; a backup run's failure
    // is the job's notification (nothing here); a run ended by the agent stopping is no failure.
    ticks.claim("verify", T, clock.now());
    ticks.claim("hourly", T + HOUR, clock.now());
    ticks.claim("verify", T + 24 * HOUR, clock.now());
    await turn();
    clock.at += 1_000;
    ticks.end("verify", T, "failed", "verification failed: 102: point b-1 failed (db: exit 1)", clock.now(), "LULL_E_COMMAND_FAILED");
    ticks.end("hourly", T + HOUR, "failed", "job j-1 (101) ended failed", clock.now(), "LULL_E_SNAPSHOT_FAILED");
    ticks.end("verify", T + 24 * HOUR, "failed", "the agent is shutting down", clock.now(), "LULL_E_SHUTTING_DOWN");
    await turn();
    assert.deepEqual(facts.slice(2).map((f) => f.kind), ["schedule-run-failed"]);
    const failed = facts[2]!;
    assert.ok(failed.kind === "schedule-run-failed");
    assert.deepEqual([failed.tick.tickAt, failed.tick.errorCode, failed.schedule.guests, failed.schedule.stacks], [T, "LULL_E_COMMAND_FAILED", ["102"], ["db"]]);

    stop();
    ticks.notRun("hourly", T + 2 * HOUR, "missed", "after stop", clock.now());
    await turn();
    assert.equal(facts.length, 3, "nothing after stop");
    db.close();
  });
});
