import assert from "node:assert/strict";
import { test } from "node:test";
import type { LedgerEntry } from "../support/index.js";
import { comparisonRows, downtimeOf, heldOf, outageOf, recordedSkew, runFigures, type GroupJson, type Outage } from "./group-figures.js";

const entry = (verb: LedgerEntry["verb"], event: LedgerEntry["event"], at: number): LedgerEntry => ({ verb, event, at, pid: 1 });
const iso = (ms: number) => new Date(ms).toISOString();

test("a stack's outage is its first complete stop → start since the run began", () => {
  const ledger = [entry("start", "begin", 10), entry("start", "end", 20), entry("stop", "begin", 100), entry("stop", "end", 150), entry("start", "begin", 400), entry("start", "end", 480)];
  const o = outageOf(ledger, 50)!;
  assert.deepEqual(o, { stopSpawned: 100, stopBegin: 100, stopEnd: 150, startBegin: 400, startEnd: 480 });
  assert.equal(outageOf([{ ...ledger[2]!, spawnedAt: 60 }, ...ledger.slice(3)], 50)?.stopSpawned, 60, "when the controller ran it");
  assert.equal(downtimeOf(o), 380);
  assert.equal(heldOf(o), 250);
  assert.equal(outageOf(ledger.slice(0, 5), 50), undefined, "not started again yet");
});

const group = (phase: string, snapshots: number[]): GroupJson => ({
  id: "g-1",
  phase,
  createdAt: iso(1_000),
  quiescedAt: iso(1_400),
  snapshotAt: iso(Math.min(...snapshots)),
  finishedAt: iso(3_000),
  error: phase === "done" ? null : { code: "LULL_E_X", message: "broke" },
  members: snapshots.map((s, i) => ({ guestId: `10${i}`, phase, snapshotAt: iso(s) })),
});
const outage = (stopEnd: number, startBegin: number): Outage => ({ stopSpawned: stopEnd - 80, stopBegin: stopEnd - 50, stopEnd, startBegin, startEnd: startBegin + 100 });

test("a run's figures, and what makes it broken", () => {
  const at = { size: 2, layout: "across" as const, round: 1 };
  const ok = runFigures(at, group("done", [1_500, 1_530]), new Map([["100", outage(1_300, 1_600)], ["101", outage(1_350, 1_540)]]), 30);
  assert.deepEqual([ok.barrierMs, ok.lastToldMs, ok.afterLastAckMs, ok.skewMs, ok.totalMs, ok.problems], [400, 270, 50, 30, 2_000, []]);

  const early = runFigures(at, group("done", [1_500, 1_530]), new Map([["100", outage(1_300, 1_520)], ["101", outage(1_510, 1_540)]]), 30);
  assert.match(early.problems.join("\n"), /100: its stack ran again 10 ms before the last snapshot/);
  assert.match(early.problems.join("\n"), /101: its stack acknowledged 10 ms after the first snapshot/);

  const failed = runFigures(at, group("failed", [1_500, 1_530]), new Map([["100", outage(1_300, 1_600)]]), undefined);
  assert.match(failed.problems.join("\n"), /run g-1 ended failed: LULL_E_X broke/);
  assert.match(failed.problems.join("\n"), /101: its stack's ledger shows no complete stop and start/);

  assert.equal(recordedSkew(["group phase", "members' snapshots span 412 ms (skew; first 101 at …)"]), 412);
  assert.equal(recordedSkew(["nothing"]), undefined);

  const local = runFigures({ ...at, layout: "local" }, group("done", [1_500, 1_510]), new Map([["100", outage(1_300, 1_600)], ["101", outage(1_350, 1_540)]]), 10);
  const rows = comparisonRows([ok, local], [2]);
  assert.equal(rows[3]!.name, "2 members: snapshot skew (first → last member)");
  assert.equal(rows[3]!.value, "30 ms / 10 ms  ×3.00");
});
