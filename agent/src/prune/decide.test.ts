import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { decideRetention, isoWeekKey, type KeepOptions, type PrunePoint } from "./decide.js";

/** A small seeded generator (mulberry32), so a failing history can be replayed from its seed. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const HOUR = 3600_000;
const STACKS = ["db", "web", "queue"];

interface History {
  points: PrunePoint[];
  keep: KeepOptions;
  lastRunFailed: boolean;
}

/** A random history: runs every few minutes to weeks, some failing, clock jumps back and forth, protected and verified points. */
function history(seed: number): History {
  const r = rng(seed);
  const points: PrunePoint[] = [];
  let clock = Date.UTC(2024, 11, 20 + Math.floor(r() * 20));
  let lastRunFailed = false;
  const runs = 1 + Math.floor(r() * 60);
  for (let i = 0; i < runs; i++) {
    const step = r();
    clock += step < 0.3 ? r() * HOUR : step < 0.7 ? r() * 30 * HOUR : step < 0.9 ? r() * 24 * 40 * HOUR : r() * 24 * 400 * HOUR;
    // A clock jump backwards now and then (an NTP correction, a restored host).
    if (r() < 0.08) clock -= r() * 48 * HOUR;
    // Two points at the very same time now and then.
    const at = r() < 0.05 && points.length > 0 ? points.at(-1)!.at : new Date(Math.floor(clock));
    lastRunFailed = r() < 0.2;
    if (lastRunFailed) continue;
    points.push({
      id: `b-${seed}-${i}`,
      at,
      protected: r() < 0.1,
      foreign: r() < 0.05,
      verifiedStacks: STACKS.filter(() => r() < 0.25),
    });
  }
  const opt = () => (r() < 0.5 ? undefined : Math.floor(r() * 5));
  return {
    points,
    keep: { keepLast: opt(), keepHourly: opt(), keepDaily: opt(), keepWeekly: opt(), keepMonthly: opt(), keepYearly: opt() },
    lastRunFailed,
  };
}

const shuffle = <T>(list: readonly T[], r: () => number): T[] => {
  const out = [...list];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
};

const newestFirst = (points: readonly PrunePoint[]) =>
  [...points].sort((a, b) => b.at.getTime() - a.at.getTime() || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0));

describe("retention decision (property, random histories)", () => {
  const SEEDS = 3000;

  it("never removes the newest verified point of a stack, a protected or a foreign point; removes nothing after a failed run", () => {
    for (let seed = 1; seed <= SEEDS; seed++) {
      const h = history(seed);
      const decisions = decideRetention(h);
      const action = new Map(decisions.map((d) => [d.id, d.action]));
      assert.equal(decisions.length, h.points.length, `seed ${seed}: one decision per point`);
      const ordered = newestFirst(h.points);
      for (const stack of STACKS) {
        const newest = ordered.find((p) => !p.foreign && p.verifiedStacks.includes(stack));
        if (newest) assert.equal(action.get(newest.id), "keep", `seed ${seed}: newest verified point of ${stack} removed`);
      }
      for (const p of h.points) {
        if (p.protected || p.foreign) assert.equal(action.get(p.id), "keep", `seed ${seed}: ${p.id} protected/foreign removed`);
      }
      if (h.lastRunFailed) assert.ok(decisions.every((d) => d.action === "keep"), `seed ${seed}: pruned after a failed run`);
      for (const d of decisions) assert.ok(d.reasons.length > 0, `seed ${seed}: ${d.id} has no reason`);
    }
  });

  it("does not depend on the order of its input", () => {
    for (let seed = 1; seed <= SEEDS; seed++) {
      const h = history(seed);
      const a = decideRetention(h);
      const b = decideRetention({ ...h, points: shuffle(h.points, rng(seed * 7)) });
      assert.deepEqual(b, a, `seed ${seed}`);
    }
  });

  it("keeps exactly the newest point of each of the N newest periods, against an independent count (one option, no extra rule)", () => {
    const periods: Record<string, (at: Date) => string> = {
      keepLast: (at) => `${at.getTime()}`,
      keepDaily: (at) => at.toDateString(),
      keepWeekly: isoWeekKey,
      keepMonthly: (at) => `${at.getFullYear()}-${at.getMonth()}`,
      keepYearly: (at) => `${at.getFullYear()}`,
    };
    for (let seed = 1; seed <= SEEDS; seed++) {
      const h = history(seed);
      const points = h.points.map((p) => ({ ...p, foreign: false, verifiedStacks: [] }));
      for (const [key, period] of Object.entries(periods)) {
        const n = 1 + (seed % 4);
        const decisions = decideRetention({ points, keep: { [key]: n }, lastRunFailed: false });
        const expected = new Set<string>();
        const seen = new Set<string>();
        for (const p of newestFirst(points)) {
          if (p.protected) {
            expected.add(p.id);
            continue;
          }
          const k = period(p.at);
          if (seen.has(k)) continue;
          if (seen.size >= n) continue;
          seen.add(k);
          expected.add(p.id);
        }
        const kept = new Set(decisions.filter((d) => d.action === "keep").map((d) => d.id));
        assert.deepEqual([...kept].sort(), [...expected].sort(), `seed ${seed} ${key}=${n}`);
      }
    }
  });
});

describe("retention decision (cases)", () => {
  const at = (iso: string) => new Date(iso);
  const point = (id: string, iso: string, more: Partial<PrunePoint> = {}): PrunePoint => ({
    id, at: at(iso), protected: false, foreign: false, verifiedStacks: [], ...more,
  });

  it("ISO week: 2021-01-03 belongs to 2020/53, 2024-12-30 to 2025/01", () => {
    assert.equal(isoWeekKey(new Date(2021, 0, 3, 12)), "2020/53");
    assert.equal(isoWeekKey(new Date(2024, 11, 30, 12)), "2025/01");
    assert.equal(isoWeekKey(new Date(2026, 11, 2, 12)), "2026/49");
  });

  it("keep-daily keeps the newest of each day; protected points neither count nor go", () => {
    const decisions = decideRetention({
      points: [
        point("a", "2026-12-02T20:00:00"),
        point("b", "2026-12-02T08:00:00"),
        point("c", "2026-12-01T20:00:00", { protected: true }),
        point("d", "2026-12-01T10:00:00"),
        point("e", "2026-11-30T10:00:00"),
      ],
      keep: { keepDaily: 2 },
      lastRunFailed: false,
    });
    assert.deepEqual(decisions.map((d) => [d.id, d.action]), [["a", "keep"], ["b", "remove"], ["c", "keep"], ["d", "keep"], ["e", "remove"]]);
    assert.deepEqual(decisions[2]!.reasons, ["protected"]);
    assert.match(decisions[0]!.reasons[0]!, /^keep-daily 2026\/12\/02$/);
  });

  it("the newest verified point of a stack outlives keep-last", () => {
    const decisions = decideRetention({
      points: [point("new", "2026-12-02T10:00:00"), point("old", "2026-11-01T10:00:00", { verifiedStacks: ["db"] }), point("older", "2026-10-01T10:00:00", { verifiedStacks: ["db"] })],
      keep: { keepLast: 1 },
      lastRunFailed: false,
    });
    assert.deepEqual(decisions.map((d) => d.action), ["keep", "keep", "remove"]);
    assert.ok(decisions[1]!.reasons.includes("newest verified point of stack db"));
  });

  it("no option set keeps everything; a failed last run removes nothing", () => {
    const points = [point("a", "2026-12-02T10:00:00"), point("b", "2026-12-01T10:00:00")];
    assert.ok(decideRetention({ points, keep: {}, lastRunFailed: false }).every((d) => d.action === "keep"));
    const failed = decideRetention({ points, keep: { keepLast: 1 }, lastRunFailed: true });
    assert.deepEqual(failed.map((d) => d.action), ["keep", "keep"]);
    assert.match(failed[1]!.reasons.at(-1)!, /last run failed/);
  });
});
