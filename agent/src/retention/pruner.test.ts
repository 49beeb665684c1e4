// The pruner on a real SQLite database: a pass deletes in bounded batches and lets the event loop
// run between them, logs what it pruned (counts), runs again on its timer, and stops for good at
// close().
import { strict as assert } from "node:assert";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { createLogger, type Clock } from "@lull/shared";
import { JobStore } from "../jobs/store.js";
import type { LogLine } from "../testing/agent-harness.js";
import { DAY_MS } from "./config.js";
import { RetentionPruner } from "./pruner.js";
import { History, NOW } from "./testing/seed-history.js";

const dirs: string[] = [];
after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

function setup() {
  const dir = mkdtempSync(join(tmpdir(), "lull-pruner-"));
  dirs.push(dir);
  const store = JobStore.open(join(dir, "agent.db"));
  const logs: LogLine[] = [];
  const log = createLogger({ name: "lull-agent", level: "debug", destination: { write: (line: string) => void logs.push(JSON.parse(line) as LogLine) } });
  const clock: Clock = { now: () => NOW, sleep: async () => undefined };
  return { store, logs, log, clock, history: new History(store) };
}

const jobCount = (store: JobStore) => (store.connection.prepare("SELECT COUNT(*) AS n FROM jobs").get() as { n: number }).n;

async function waitFor(what: string, check: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) assert.fail(`not within ${timeoutMs} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe("retention pruner", () => {
  it("deletes in bounded batches, yielding between them, and logs the counts", async () => {
    const { store, logs, log, clock, history } = setup();
    for (let i = 0; i < 7; i++) history.ended("a", 100 + i, { progress: 2 });
    history.ended("a", 1);
    const pruner = new RetentionPruner({ store, policy: { maxAgeMs: 30 * DAY_MS, keepLast: 0 }, intervalMs: 3_600_000, clock, log, batch: { maxJobs: 2, maxEvents: 1000 } });
    // Another task on the event loop: it gets a turn between every two batches.
    let turns = 0;
    let pruning = true;
    const other = () => {
      turns += 1;
      if (pruning) setImmediate(other);
    };
    setImmediate(other);
    const report = await pruner.runOnce();
    pruning = false;
    assert.equal(report.jobs, 7);
    assert.equal(report.batches, 4, "7 jobs in batches of at most 2");
    assert.ok(turns >= report.batches - 1, `the event loop ran between batches (${turns} turns)`);
    assert.equal(jobCount(store), 1);
    const line = logs.find((l) => l.msg === "retention pruned ended jobs");
    assert.ok(line, JSON.stringify(logs));
    assert.equal(line.jobs, 7);
    assert.equal(line.events, report.events);
    assert.ok(report.events >= 7 * 6, "every event of every pruned job");
    assert.equal(line.maxAgeDays, 30);
    assert.equal(line.keepLast, 0);

    const again = await pruner.runOnce();
    assert.equal(again.jobs, 0);
    assert.ok(logs.some((l) => l.msg === "retention found nothing to prune"));
    await pruner.close();
    store.close();
  });

  it("runs at start and on its timer; close() clears the timer and no pass runs after it", async () => {
    const { store, log, clock, history } = setup();
    history.ended("a", 50);
    const pruner = new RetentionPruner({ store, policy: { maxAgeMs: 30 * DAY_MS, keepLast: 0 }, intervalMs: 20, clock, log });
    pruner.start();
    await waitFor("the start-up pass pruned", () => jobCount(store) === 0);
    history.ended("a", 60);
    await waitFor("a timer pass pruned", () => jobCount(store) === 0);
    await pruner.close();
    history.ended("a", 70);
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(jobCount(store), 1, "no pass after close()");
    const report = await pruner.runOnce();
    assert.equal(report.stopped, true, "a pass asked for after close() does nothing");
    store.close();
  });

  it("a failing pass is logged and does not throw", async () => {
    const { store, logs, log, clock, history } = setup();
    history.ended("a", 50);
    const pruner = new RetentionPruner({ store, policy: { maxAgeMs: 30 * DAY_MS, keepLast: 0 }, intervalMs: 3_600_000, clock, log });
    store.connection.exec("DROP TABLE pruned_events"); // every delete transaction fails now
    const report = await pruner.runOnce();
    assert.equal(report.jobs, 0);
    assert.equal(jobCount(store), 1, "the failed batch was rolled back whole");
    assert.ok(logs.some((l) => l.msg === "retention pass failed"));
    await pruner.close();
    store.close();
  });
});
