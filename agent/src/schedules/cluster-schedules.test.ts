// The cluster-wide schedules file: read, narrowed to this node's guests, checked as strictly as the
// local config (each error naming the file and the key), and picked up by a running engine when it
// changes — a removed schedule stops ticking, a new one starts, a wrong file changes nothing.
import { strict as assert } from "node:assert";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { AgentDatabase } from "../ledger/agent-database.js";
import { CLUSTER_SCHEDULES_FILE, readClusterSchedules, type LocalView } from "./cluster-schedules.js";
import { schedulesConfigSchema, type ScheduleConfig } from "./config.js";
import { ScheduleEngine } from "./engine.js";
import { scaledClock, scaledTiming } from "./lease.js";
import { ScheduleTickStore } from "./store.js";

const dir = mkdtempSync(join(tmpdir(), "lull-cluster-sched-"));
after(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;

function root(list: unknown): string {
  const r = join(dir, `pve-${++n}`);
  mkdirSync(join(r, "lull"), { recursive: true });
  writeFileSync(join(r, CLUSTER_SCHEDULES_FILE), typeof list === "string" ? list : JSON.stringify({ list }));
  return r;
}

const view: LocalView = {
  guestIds: ["101", "102"],
  groupIds: ["shop"],
  local: schedulesConfigSchema.parse({ list: [{ id: "local-nightly", action: "backup", schedule: "daily", timeZone: "UTC", guests: ["101"] }] }),
};
const s = (patch: Record<string, unknown>) => ({ action: "backup", schedule: "02:00", timeZone: "Europe/Berlin", ...patch });

describe("cluster-wide schedules file", () => {
  it("is no schedule when absent", async () => {
    assert.equal(await readClusterSchedules(join(dir, "nowhere"), view), undefined);
  });

  it("narrows guests to this node's; a schedule for other nodes or an unknown group is inactive here", async () => {
    const r = root([
      s({ id: "all-nodes", all: true }),
      s({ id: "mixed", guests: ["101", "201"] }),
      s({ id: "elsewhere", guests: ["201", "202"] }),
      s({ id: "other-group", group: "billing", action: "verify", scope: "cluster" }),
      s({ id: "shop-verify", group: "shop", action: "verify", scope: "cluster", schedule: "sat 03:30" }),
    ]);
    const got = (await readClusterSchedules(r, view))!;
    assert.deepEqual(got.schedules.map((x) => [x.id, x.guests, x.scope]), [["all-nodes", [], "node"], ["mixed", ["101"], "node"], ["shop-verify", [], "cluster"]]);
    assert.deepEqual(got.inactive, [
      { id: "elsewhere", why: "none of its guests (201, 202) is on this node" },
      { id: "other-group", why: "group billing is not configured on this node" },
    ]);
  });

  it("names the file and the key of every mistake", async () => {
    const cases: Array<[unknown, RegExp]> = [
      ["{ not json", /schedules\.json is not JSON/],
      [{ list: [] , extra: 1 }, /schedules\.json: \(top level\): Unrecognized key/],
      [[s({ id: "Bad Id", all: true })], /schedules\.json: list\.0\.id: must be \[a-z0-9-\]/],
      [[s({ id: "x", all: true, schedule: "someday" })], /schedules\.json: list\.0\.schedule: /],
      [[s({ id: "x", all: true, timeZone: "Mars/Olympus" })], /schedules\.json: list\.0\.timeZone: /],
      [[s({ id: "local-nightly", all: true })], /list\.0\.id: schedule local-nightly is also in the agent's config \(schedules\.list\)/],
      [[s({ id: "twice", all: true }), s({ id: "twice", guests: ["102"] })], /list\.1\.id: duplicate schedule id twice/],
      [[s({ id: "x", all: true, scope: "cluster" })], /list\.0\.scope: .*cannot be scope: cluster/],
    ];
    for (const [content, re] of cases) {
      const r = typeof content === "string" ? root(content) : Array.isArray(content) ? root(content) : (() => { const p = join(dir, `pve-${++n}`); mkdirSync(join(p, "lull"), { recursive: true }); writeFileSync(join(p, CLUSTER_SCHEDULES_FILE), JSON.stringify(content)); return p; })();
      await assert.rejects(readClusterSchedules(r, view), (err: Error & { code?: string }) => err.code === "LULL_E_CONFIG_INVALID" && re.test(err.message), String(re));
    }
  });

  it("a running engine picks up a changed file; a wrong file leaves the schedules as they were", async () => {
    const db = AgentDatabase.open(join(dir, "engine.db"));
    const BASE = Date.parse("2026-06-01T00:00:00Z");
    // 60× real time: `minutely` ticks every real second.
    const clock = scaledClock(60, BASE + 30_000, Date.now());
    const r = root([s({ id: "first", all: true, schedule: "minutely", timeZone: "UTC" })]);
    const load = async (): Promise<ScheduleConfig[]> => (await readClusterSchedules(r, view, clock.now()))?.schedules ?? [];
    const runs: string[] = [];
    const logs: string[] = [];
    const engine = new ScheduleEngine({
      schedules: await load(),
      store: new ScheduleTickStore(db, "pve1"),
      actions: { backup: async (ctx) => void runs.push(`${ctx.schedule.id}@${new Date(ctx.tickAt).toISOString().slice(11, 16)}`) },
      clock,
      leaseTiming: scaledTiming(2_000),
      refresh: { everyMs: 6_000, load }, // 100 ms real
      log: (msg) => logs.push(msg),
    });
    engine.start();
    await new Promise((res) => setTimeout(res, 1_200));
    writeFileSync(join(r, CLUSTER_SCHEDULES_FILE), JSON.stringify({ list: [s({ id: "second", all: true, schedule: "minutely", timeZone: "UTC" })] }));
    await new Promise((res) => setTimeout(res, 1_500));
    writeFileSync(join(r, CLUSTER_SCHEDULES_FILE), "{ broken");
    await new Promise((res) => setTimeout(res, 1_000));
    assert.deepEqual(engine.status().map((x) => x.id), ["second"], "the broken file changed nothing");
    await engine.close();
    db.close();
    assert.ok(runs.includes("first@00:01"), runs.join(" "));
    assert.ok(runs.some((x) => x.startsWith("second@")), runs.join(" "));
    const firstAfter = runs.filter((x) => x.startsWith("first@")).length;
    assert.ok(firstAfter <= 2, `first stopped ticking once removed: ${runs.join(" ")}`);
    assert.ok(logs.includes("schedules changed"));
    assert.ok(logs.some((l) => l.startsWith("schedules not reloaded")));
  });
});
