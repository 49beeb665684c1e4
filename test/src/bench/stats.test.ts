import assert from "node:assert/strict";
import { test } from "node:test";
import { median, overheadOf, summarize, summaryLines, type Sample } from "./stats.js";

const sample = (mode: Sample["mode"], downtimeMs: number, round = 1): Sample => ({
  round, mode, downtimeMs, stopMs: 100, snapshotMs: 20, startMs: 200, totalMs: 10_000,
});

test("medians, overhead and the targets", () => {
  assert.equal(median([3, 1, 2]), 2);
  assert.equal(median([4, 1, 2, 3]), 2.5);
  assert.ok(Number.isNaN(median([])));
  assert.equal(overheadOf(sample("early", 350)), 30);

  const met = summarize([sample("early", 340), sample("early", 350, 2), sample("end", 20_000), sample("end", 20_100, 2)]);
  assert.equal(met.early.overheadMs, 25);
  assert.equal(met.overheadMet, true);
  assert.ok(Math.abs(met.ratio - 345 / 20_050) < 1e-9);
  assert.equal(met.ratioMet, true);
  assert.match(summaryLines(met).join("\n"), /target <= 50 ms: met[\s\S]*1\.72 %\s+target <= 2 %: met/);

  const missed = summarize([sample("early", 900), sample("end", 10_000)]);
  assert.equal(missed.overheadMet, false);
  assert.equal(missed.ratioMet, false);
  assert.match(summaryLines(missed).join("\n"), /580 ms\s+target <= 50 ms: MISSED[\s\S]*9\.00 %\s+target <= 2 %: MISSED/);
});
