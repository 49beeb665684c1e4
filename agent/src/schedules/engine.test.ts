// The schedule engine on a node: one record per (schedule, tick), missed and skipped ticks with
// their reasons (as events too), catch-up, a run cut at the next tick, orphans of a crash.
// The clock runs 60× real time, so `minutely` ticks every real second.
import { strict as assert } from "node:assert";
import { existsSync, mkdirSync, mkdtempSync, rmSync, utimesSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { AgentDatabase } from "../ledger/agent-database.js";
import { EventLog } from "../ledger/event-log.js";
import { ScheduleEngine, type ScheduleAction } from "./engine.js";
import { Pmxcfs } from "./cluster-fs.js";
import { lockPath, scaledClock, scaledTiming, type Clock } from "./lease.js";

// The lease at 60×; a renew may take up to 300 ms on a loaded test machine (scaled it would get
// 83 ms, and a late one loses the lease), still well inside the 1 s validity.
const TEST_LEASE_TIMING = { ...scaledTiming(120_000 / 60), renewTimeoutMs: 300 };
import { ScheduleTickStore, scheduleJobId } from "./store.js";
import { scheduleSchema, schedulesConfigSchema, scheduleConfigIssues, type ScheduleConfig } from "./config.js";

const dir = mkdtempSync(join(tmpdir(), "lull-sched-"));
after(() => rmSync(dir, { recursive: true, force: true }));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
// The minute boundaries of the sim clock line up with real seconds.
const BASE = Date.parse("2026-06-01T00:00:00Z");

function schedule(patch: Partial<ScheduleConfig> = {}): ScheduleConfig {
  return scheduleSchema.parse({ id: "nightly", action: "backup", schedule: "minutely", timeZone: "UTC", guests: ["g1"], ...patch });
}

function engineOver(db: AgentDatabase, clock: Clock, s: ScheduleConfig, action: ScheduleAction): { engine: ScheduleEngine; store: ScheduleTickStore } {
  const store = new ScheduleTickStore(db, "pve1");
  const engine = new ScheduleEngine({ schedules: [s], store, actions: { backup: action }, clock, leaseTiming: TEST_LEASE_TIMING, lateAfterMs: 30_000 });
  return { engine, store };
}

describe("schedule engine", () => {
  it("runs each tick once, records it done, and a second claim of the same tick is refused", async () => {
    const db = AgentDatabase.open(join(dir, "a.db"));
    const realStart = Date.now() + 100;
    const clock = scaledClock(60, BASE + 30_000, realStart);
    const runs: number[] = [];
    const { engine, store } = engineOver(db, clock, schedule(), async (ctx) => {
      runs.push(ctx.tickAt);
      return { ref: `job-${ctx.tickAt}` };
    });
    engine.start();
    await sleep(2_100);
    await engine.close();
    assert.deepEqual(runs, [BASE + 60_000, BASE + 120_000]);
    const recs = store.all("nightly");
    assert.deepEqual(recs.map((r) => [r.tickAt, r.outcome, r.runRef]), runs.map((t) => [t, "done", `job-${t}`]));
    assert.equal(store.claim("nightly", BASE + 60_000, clock.now()), false, "the primary key refuses a second run of a tick");
    const notes = new EventLog(db).after({ afterSeq: 0, jobId: scheduleJobId("nightly"), limit: 100 }).map((e) => e.message);
    assert.ok(notes.some((m) => m.includes("tick 2026-06-01T00:01:00.000Z done")), notes.join("\n"));
    const st = engine.status()[0]!;
    assert.equal(st.lastRun?.tickAt, BASE + 120_000);
    assert.equal(st.nextRunAt, BASE + 180_000);
    db.close();
  });

  it("after downtime: missed ticks recorded with the reason; catchUp once runs the newest; a crashed run ends failed", async () => {
    const path = join(dir, "b.db");
    let db = AgentDatabase.open(path);
    let store = new ScheduleTickStore(db, "pve1");
    // An earlier start ran 00:01 and crashed during 00:02.
    assert.ok(store.claim("nightly", BASE + 60_000, BASE + 60_000));
    store.end("nightly", BASE + 60_000, "done", "", BASE + 61_000);
    assert.ok(store.claim("nightly", BASE + 120_000, BASE + 120_000));
    db.close();
    db = AgentDatabase.open(path);
    const clock = scaledClock(60, BASE + 6 * 60_000 + 30_000, Date.now());
    const runs: number[] = [];
    const started = engineOver(db, clock, schedule({ catchUp: "once" }), async (ctx) => { runs.push(ctx.tickAt); });
    store = started.store;
    started.engine.start();
    await sleep(300);
    await started.engine.close();
    const byTick = new Map(store.all("nightly").map((r) => [r.tickAt, r]));
    assert.equal(byTick.get(BASE + 120_000)?.outcome, "failed");
    assert.match(byTick.get(BASE + 120_000)!.reason, /agent stopped during the run/);
    for (const m of [3, 4, 5]) {
      assert.equal(byTick.get(BASE + m * 60_000)?.outcome, "missed", `00:0${m}`);
      assert.equal(byTick.get(BASE + m * 60_000)?.reason, "the agent was not running");
    }
    assert.deepEqual(runs, [BASE + 6 * 60_000], "catch-up ran the newest missed tick once");
    assert.equal(byTick.get(BASE + 6 * 60_000)?.outcome, "done");
    db.close();
  });

  it("catchUp skip records every missed tick and runs none", async () => {
    const path = join(dir, "c.db");
    let db = AgentDatabase.open(path);
    const store0 = new ScheduleTickStore(db, "pve1");
    store0.claim("nightly", BASE + 60_000, BASE + 60_000);
    store0.end("nightly", BASE + 60_000, "done", "", BASE + 61_000);
    db.close();
    db = AgentDatabase.open(path);
    const clock = scaledClock(60, BASE + 3 * 60_000 + 30_000, Date.now());
    const runs: number[] = [];
    const { engine, store } = engineOver(db, clock, schedule(), async (ctx) => { runs.push(ctx.tickAt); });
    engine.start();
    await sleep(200);
    await engine.close();
    assert.deepEqual(runs, []);
    assert.deepEqual(store.all("nightly").map((r) => r.outcome), ["done", "missed", "missed"]);
    db.close();
  });

  it("a run still going at the next tick: that tick is skipped, saying why; the run is cut when the next tick comes", async () => {
    const db = AgentDatabase.open(join(dir, "d.db"));
    const clock = scaledClock(60, BASE + 45_000, Date.now() + 50);
    const { engine, store } = engineOver(db, clock, schedule({ schedule: "*/2" }), async (ctx) => {
      // Ignores its signal for a while (a hung step), then gives up.
      await new Promise((r) => setTimeout(r, 2_800));
      if (ctx.signal.aborted) throw ctx.signal.reason;
    });
    // Ticks at 00:02 (real +1.25 s); the run is cut at 00:04 (+3.25 s), yet its promise settles at +4 s.
    engine.start();
    await sleep(4_600);
    await engine.close();
    const r = store.get("nightly", BASE + 120_000);
    assert.equal(r?.outcome, "failed");
    assert.match(r!.reason, /next tick came/);
    // The 00:04 tick came while 00:02's run was still ending.
    const next = store.get("nightly", BASE + 240_000);
    assert.equal(next?.outcome, "skipped");
    assert.match(next!.reason, /previous run \(tick 2026-06-01T00:02:00.000Z\) is still going/);
    db.close();
  });
});

describe("schedule engine status for the metrics", () => {
  it("interval, ticks by outcome, and a cluster schedule's lease: held during its run, acquired, refused while another node holds it", async () => {
    const db = AgentDatabase.open(join(dir, "m.db"));
    const root = mkdtempSync(join(tmpdir(), "lull-sched-cfs-"));
    mkdirSync(join(root, "local"));
    mkdirSync(join(root, "priv", "lock"), { recursive: true });
    const clock = scaledClock(60, BASE + 30_000, Date.now() + 100);
    const store = new ScheduleTickStore(db, "pve1");
    const heldDuringRun: boolean[] = [];
    let engine: ScheduleEngine;
    const s = schedule({ scope: "cluster" });
    engine = new ScheduleEngine({
      schedules: [s],
      store,
      actions: {
        backup: async () => {
          heldDuringRun.push(engine.status()[0]!.leaseHeld);
          // Once this run released it, another node takes the lock and renews it: the second tick is refused.
          const lock = join(root, lockPath("sched-nightly"));
          const t = setInterval(() => {
            try {
              if (!existsSync(lock)) mkdirSync(lock);
              utimesSync(lock, 0, clock.now() / 1000);
            } catch {
              // the test's root is gone
            }
          }, 50);
          setTimeout(() => clearInterval(t), 3_000);
        },
      },
      clock,
      cluster: new Pmxcfs("pve1", root),
      leaseTiming: TEST_LEASE_TIMING,
      lateAfterMs: 30_000,
    });
    engine.start();
    // Until the first tick has ended done and the second was refused (minutes 1 and 2 of the scaled
    // clock, ~1.5 s): waiting for the outcome, not for a fixed time, keeps a loaded machine from
    // closing the engine before the first run's outcome is counted.
    const until = Date.now() + 15_000;
    try {
      for (;;) {
        const t = engine.status()[0]!.ticks;
        if ((t.done ?? 0) >= 1 && (t.skipped ?? 0) >= 1) break;
        assert.ok(Date.now() < until, `the two ticks within 15 s: ${JSON.stringify(store.all("nightly"))}`);
        await sleep(50);
      }
    } finally {
      // Also when the wait failed: an open engine would keep ticking until the file's timeout.
      await engine.close();
    }
    rmSync(root, { recursive: true, force: true });
    const st = engine.status()[0]!;
    assert.equal(heldDuringRun.length, 1, "the first tick ran once");
    // Held while the run goes — unless a late renew on a loaded machine already lost it (validForMs
    // is 1 s at 60×); then the status must say so, and the loss is counted below.
    assert.ok(heldDuringRun[0] === true || st.lease.lost > 0, `held while the first tick ran (lost ${st.lease.lost})`);
    assert.equal(st.leaseHeld, false, "not held between runs");
    assert.equal(st.intervalMs, 60_000, "minutely");
    assert.equal(st.ticks.done, 1);
    assert.equal(st.ticks.skipped, 1, JSON.stringify(store.all("nightly")));
    assert.deepEqual([st.lease.acquired, st.lease.refused], [1, 1]);
    // At 60× a late renew on a loaded machine can lose the lease (validForMs is 1 s here): counted, never more than taken.
    assert.ok(st.lease.lost <= st.lease.acquired);
    db.close();
  });
});

describe("schedules config: windows checked together", () => {
  const cfg = (list: unknown[]) => schedulesConfigSchema.parse({ list });
  it("a freshness window shorter than the cadence that refreshes it names both keys", () => {
    const issues = scheduleConfigIssues(cfg([{ id: "v", action: "verify", schedule: "daily", timeZone: "UTC", scope: "cluster", guests: ["g1"], freshnessMs: 3_600_000 }]), ["g1"], []);
    assert.equal(issues.length, 1);
    assert.match(issues[0]!.message, /freshnessMs \(3600000 ms\) is shorter than the cadence of schedule 'daily' \(86400000 ms\)/);
  });
  it("bad calendar, unknown zone, unknown guest, no target, maxRunMs past the cadence", () => {
    const issues = scheduleConfigIssues(cfg([
      { id: "a", action: "backup", schedule: "mon..fry", timeZone: "UTC", guests: ["g1"] },
      { id: "b", action: "backup", schedule: "daily", timeZone: "Mars/Olympus", guests: ["nope"] },
      { id: "c", action: "backup", schedule: "*/15", timeZone: "UTC", maxRunMs: 3_600_000 },
    ]), ["g1"], []).map((i) => i.message).join("\n");
    assert.match(issues, /'fry' is not a weekday/);
    assert.match(issues, /time zone 'Mars\/Olympus' is not an IANA time zone/);
    assert.match(issues, /unknown guest nope/);
    assert.match(issues, /names exactly one of guests, group or all/);
    assert.match(issues, /maxRunMs \(3600000 ms\) is longer than the cadence of schedule '\*\/15' \(900000 ms\)/);
  });
  it("verify.outdatedAfterDays shorter than a verify schedule's cadence names both keys", () => {
    const issues = scheduleConfigIssues(cfg([{ id: "v", action: "verify", schedule: "monthly", timeZone: "UTC", guests: ["g1"] }]), ["g1"], [], Date.parse("2026-03-04T00:00:00Z"), 7 * 86_400_000);
    assert.equal(issues.length, 1);
    assert.match(issues[0]!.message, /verify\.outdatedAfterDays \(7 days\) is shorter than the cadence of schedule 'monthly'/);
  });
  it("lease timing: a renew interval over 10 s is a config error", () => {
    const issues = scheduleConfigIssues(schedulesConfigSchema.parse({ lease: { renewEveryMs: 30_000 } }), [], []);
    assert.match(issues[0]!.message, /schedules\.lease\.renewEveryMs \(30000\) must be at most 10 s/);
  });
});
