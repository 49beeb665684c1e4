// The status page's pictures from hand-made jobs: phase segments from the event log, down
// intervals as long as the reported downtime, the time scale written on the SVG, escaping.
import { strict as assert } from "node:assert";
import { describe, it } from "node:test";
import { EventKind, Phase, StackState, type Event } from "@lull/proto";
import { newJobRecord, type JobRecord } from "../jobs/job.js";
import { downIntervals, phaseSegments, type JobView } from "./model.js";
import { downtimeChartSvg, formatMs, timelineSvg } from "./svg.js";

const T0 = Date.UTC(2026, 0, 1, 2, 0, 0);

function job(over: Partial<JobRecord> = {}): JobRecord {
  const base = newJobRecord({ id: "j-1", guestId: "101", engine: "native", policy: 0, idempotencyKey: "k", quiesceTimeoutMs: 1000, requestedBy: "t", now: T0 });
  return { ...base, ...over };
}

function phaseEvent(phase: Phase, at: number, seq: number): Event {
  return { seq, at: new Date(at), jobId: "j-1", guestId: "101", kind: EventKind.EVENT_KIND_PHASE, phase, mode: 0, consistency: 0, snapshotAt: undefined, bytesDone: 0, bytesTotal: 0, stack: "", stackState: 0, downtimeMs: 0, errorCode: "", message: "" };
}

describe("status pictures", () => {
  it("phase segments run from one PHASE event to the next; the terminal one closes the last", () => {
    const events = [
      phaseEvent(Phase.PHASE_QUEUED, T0 + 2, 1),
      phaseEvent(Phase.PHASE_QUIESCING, T0 + 10, 2),
      { ...phaseEvent(Phase.PHASE_QUIESCING, T0 + 20, 3), kind: EventKind.EVENT_KIND_STACK },
      phaseEvent(Phase.PHASE_ARCHIVING, T0 + 50, 4),
      phaseEvent(Phase.PHASE_DONE, T0 + 90, 5),
    ];
    const { phases, incomplete } = phaseSegments(job(), events, T0 + 90);
    assert.equal(incomplete, false);
    assert.deepEqual(
      phases.map((p) => [p.phase, p.start - T0, p.end - T0]),
      [
        [Phase.PHASE_QUEUED, 0, 10],
        [Phase.PHASE_QUIESCING, 10, 50],
        [Phase.PHASE_ARCHIVING, 50, 90],
      ],
    );
  });

  it("pruned events: an unknown first segment from the job's creation, flagged incomplete", () => {
    const { phases, incomplete } = phaseSegments(job(), [phaseEvent(Phase.PHASE_ARCHIVING, T0 + 40, 9)], T0 + 100);
    assert.equal(incomplete, true);
    assert.deepEqual(phases.map((p) => [p.phase, p.start - T0, p.end - T0]), [
      [Phase.PHASE_UNSPECIFIED, 0, 40],
      [Phase.PHASE_ARCHIVING, 40, 100],
    ]);
  });

  it("a resumed stack's interval ends at its resume and lasts its reported downtime; a stopped one runs to now", () => {
    const j = job({
      phase: Phase.PHASE_ARCHIVING,
      stacks: [
        { stack: "app", state: StackState.STACK_STATE_RESUMED, reason: "", downtimeMs: 700, resumedEarly: true, acknowledgedAt: new Date(T0 + 100), resumedAt: new Date(T0 + 820) },
        { stack: "db", state: StackState.STACK_STATE_QUIESCED, reason: "", downtimeMs: 0, resumedEarly: false, acknowledgedAt: new Date(T0 + 150), resumedAt: undefined },
        { stack: "web", state: StackState.STACK_STATE_REFUSED, reason: "busy", downtimeMs: 0, resumedEarly: false, acknowledgedAt: new Date(T0 + 150), resumedAt: undefined },
      ],
    });
    const d = downIntervals(j, T0 + 1000);
    assert.deepEqual(d.map((s) => [s.stack, s.start - T0, s.end - T0, s.downtimeMs, s.open]), [
      ["app", 120, 820, 700, false],
      ["db", 150, 1000, undefined, true],
      ["web", -T0, -T0, undefined, false],
    ]);
  });

  it("the timeline's rect widths are the downtimes in its declared scale; text is escaped", () => {
    const view: JobView = {
      job: job({ id: "j-<1>" }),
      running: false,
      start: T0,
      end: T0 + 2000,
      phases: [{ phase: Phase.PHASE_QUIESCING, start: T0, end: T0 + 2000 }],
      phasesIncomplete: false,
      stacks: [{ stack: "a&b", state: StackState.STACK_STATE_RESUMED, start: T0 + 500, end: T0 + 1500, downtimeMs: 1000, open: false }],
      snapshotAt: T0 + 1000,
    };
    const svg = timelineSvg(view);
    const scale = Number(/data-px-per-ms="([\d.e-]+)"/.exec(svg)?.[1]);
    const plotX = Number(/data-plot-x="(\d+)"/.exec(svg)?.[1]);
    assert.ok(scale > 0);
    const rect = /<rect class="down" data-stack="a&amp;b"[^>]* x="([\d.]+)" y="[\d.]+" width="([\d.]+)"/.exec(svg);
    assert.ok(rect, svg);
    assert.ok(Math.abs(Number(rect[2]) / scale - 1000) < 0.01);
    assert.ok(Math.abs((Number(rect[1]) - plotX) / scale - 500) < 0.01);
    const snap = /<line class="snapshot" data-at="\d+" x1="([\d.]+)"/.exec(svg);
    assert.ok(Math.abs((Number(snap?.[1]) - plotX) / scale - 1000) < 0.01);
    assert.ok(svg.includes("j-&lt;1&gt;") && !svg.includes("j-<1>"));
  });

  it("the downtime chart: one bar per backup, heights in its scale", () => {
    const svg = downtimeChartSvg({ guestId: "101", stack: "app", points: [{ jobId: "a", at: T0, downtimeMs: 400 }, { jobId: "b", at: T0 + 1, downtimeMs: 800 }] });
    const bars = [...svg.matchAll(/<rect class="bar" data-job="(\w)" data-downtime-ms="(\d+)"[^>]* height="([\d.]+)"/g)];
    assert.deepEqual(bars.map((b) => b[1]), ["a", "b"]);
    assert.ok(Math.abs(Number(bars[1]?.[3]) - 2 * Number(bars[0]?.[3])) < 0.01);
    assert.match(svg, /mean 600 ms/);
  });

  it("durations read like an operator writes them", () => {
    assert.deepEqual([formatMs(850), formatMs(1234), formatMs(12_345), formatMs(245_000)], ["850 ms", "1.23 s", "12.3 s", "4 min 05 s"]);
  });
});
