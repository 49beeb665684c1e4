// One node of the lease simulation: the real schedule engine, its ledger (a real agent database
// with its migrations) and the fake pmxcfs, on a clock `speed` times faster than real time shared
// by every node. The action writes what it does to a shared log (one JSON line per write, O_APPEND)
// so the driver can count runs, misses and stale actions.
//   node sim-node.js <json options>
import { appendFileSync } from "node:fs";
import { AgentDatabase, ScheduleEngine, ScheduleTickStore, scaledClock, scaledTiming, type RunContext } from "@lull/agent";
import { FakePmxcfs } from "./fake-pmxcfs.js";

export interface SimNodeOptions {
  root: string;
  nodeId: number;
  nodeName: string;
  db: string;
  log: string;
  speed: number;
  /** Sim-clock origin (ms) and the real time it corresponds to; the same for every node. */
  simBase: number;
  realBase: number;
  /** The calendar event of the cluster-wide schedule. */
  schedule: string;
  /** Sim ms of work per run: uniform in [min, max]. */
  workMinMs: number;
  workMaxMs: number;
}

const o = JSON.parse(process.argv[2]!) as SimNodeOptions;
const clock = scaledClock(o.speed, o.simBase, o.realBase);
const timing = scaledTiming(120_000); // sim time: the real windows
const fs = new FakePmxcfs({ root: o.root, nodeName: o.nodeName, nodeId: o.nodeId, lockTimeoutMs: 120_000 / o.speed });
fs.startDaemon();
const db = AgentDatabase.open(o.db);
const store = new ScheduleTickStore(db, o.nodeName);
const write = (rec: Record<string, unknown>) => appendFileSync(o.log, `${JSON.stringify({ node: o.nodeName, ...rec })}\n`);

async function work(ctx: RunContext): Promise<{ ref: string }> {
  const ms = o.workMinMs + Math.random() * (o.workMaxMs - o.workMinMs);
  const end = clock.now() + ms;
  if (!ctx.leaseValid()) throw new Error("lease not valid at start");
  write({ ev: "start", tick: ctx.tickAt, t: clock.now() });
  while (clock.now() < end) {
    // One chunk (≤ the lease's chunk bound), then check the lease before the next side effect.
    await clock.sleep(Math.min(1_000, end - clock.now()));
    if (!ctx.leaseValid() || ctx.signal.aborted) {
      write({ ev: "stop", tick: ctx.tickAt, t: clock.now(), lostAt: ctx.lease?.lostAt ?? null, lostRenewAt: ctx.lease?.lostRenewAt ?? ctx.lease?.lostAt ?? null, why: ctx.lease?.lostReason ?? String(ctx.signal.reason) });
      throw new Error(`stopped: ${ctx.lease?.lostReason || "aborted"}`);
    }
    write({ ev: "chunk", tick: ctx.tickAt, t: clock.now() });
  }
  write({ ev: "end", tick: ctx.tickAt, t: clock.now() });
  return { ref: `work-${ctx.tickAt}` };
}

const engine = new ScheduleEngine({
  schedules: [{ id: "sim", action: "verify", schedule: o.schedule, timeZone: "UTC", scope: "cluster", catchUp: "once", guests: [], all: false }],
  store,
  actions: { verify: work },
  clock,
  cluster: fs,
  leaseTiming: timing,
  lateAfterMs: 20_000,
});
engine.start();
write({ ev: "up", t: clock.now(), pid: process.pid });
process.on("SIGTERM", () => {
  void engine.close().then(() => {
    db.close();
    process.exit(0);
  });
});
