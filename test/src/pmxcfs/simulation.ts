// The three-node lease simulation: three sim-node processes, each in its own network namespace
// (ip netns, a veth pair to the host), share the fake pmxcfs and one cluster-wide schedule ticking
// every 5 s of a clock `speed` times real time. Chaos: random kill -9 (and restart), SIGSTOP
// pauses longer than the lease, quorum loss and return. Afterwards it counts, from the nodes'
// ledgers and the shared work log: double runs, unreported misses, stale-holder actions, the gap
// between lease loss and work stop, and the share of ticks run on time.
import { spawn, execFileSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import Database from "better-sqlite3";
import { parseCalendarEvent, ticksBetween } from "@lull/agent";
import { initFakePmxcfs, setQuorum } from "./fake-pmxcfs.js";
import type { SimNodeOptions } from "./sim-node.js";

export interface SimulationOptions {
  ticks: number;
  /** Sim ms per real ms. */
  speed?: number;
  seed?: number;
  log?: (line: string) => void;
}

export interface SimulationResult {
  ticks: number;
  ran: number;
  doubleRuns: number;
  unreportedMisses: number;
  /** Ticks claimed cluster-wide by a node killed before its run started (reported as skipped by the others, not run). */
  claimedNotRun: number;
  recordedMissedOrSkipped: number;
  staleHolderActions: number;
  kills: number;
  pauses: number;
  quorumLosses: number;
  /** Work stop minus the moment the holder found its lease lost (sim ms). */
  stopGapsMs: number[];
  /** Work stop minus the moment its first unsuccessful renew was due (includes a SIGSTOP pause). */
  stopSinceRenewMs: number[];
  onTimeShare: number;
  realSeconds: number;
  ticksPerSecond: number;
}

const TICK_MS = 5_000;
const SCHEDULE = "*:*:0/5";
const SIM_BASE = Date.parse("2026-06-01T00:00:00Z");

function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 2 ** 32;
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Node {
  id: number;
  name: string;
  ns: string;
  proc: ChildProcess | undefined;
  state: "up" | "dead" | "paused";
}

function ip(...args: string[]): void {
  execFileSync("ip", args, { stdio: ["ignore", "ignore", "pipe"] });
}

function makeNamespaces(tag: string): string[] {
  const names: string[] = [];
  for (let i = 1; i <= 3; i++) {
    const ns = `lull-${tag}-${i}`;
    ip("netns", "add", ns);
    names.push(ns);
    const host = `lv${tag}${i}h`.slice(0, 15);
    const peer = `lv${tag}${i}n`.slice(0, 15);
    ip("link", "add", host, "type", "veth", "peer", "name", peer);
    ip("link", "set", peer, "netns", ns);
    ip("addr", "add", `10.251.${i}.1/30`, "dev", host);
    ip("link", "set", host, "up");
    ip("netns", "exec", ns, "ip", "addr", "add", `10.251.${i}.2/30`, "dev", peer);
    ip("netns", "exec", ns, "ip", "link", "set", peer, "up");
    ip("netns", "exec", ns, "ip", "link", "set", "lo", "up");
  }
  return names;
}

function dropNamespaces(tag: string, names: string[]): void {
  for (let i = 1; i <= names.length; i++) {
    try { ip("link", "del", `lv${tag}${i}h`.slice(0, 15)); } catch { /* gone with its namespace */ }
    try { ip("netns", "del", names[i - 1]!); } catch { /* already gone */ }
  }
}

export async function runSimulation(opts: SimulationOptions): Promise<SimulationResult> {
  const speed = opts.speed ?? 100;
  const random = rng(opts.seed ?? 11);
  const say = opts.log ?? (() => {});
  const dir = mkdtempSync(join(tmpdir(), "lull-lease-sim-"));
  const root = join(dir, "pve");
  const log = join(dir, "work.log");
  await initFakePmxcfs(root);
  const tag = (process.pid % 100_000).toString(36);
  const names = makeNamespaces(tag);
  const realBase = Date.now() + 500;
  const simNow = () => SIM_BASE + (Date.now() - realBase) * speed;
  const script = fileURLToPath(new URL("./sim-node.js", import.meta.url));
  const nodes: Node[] = [1, 2, 3].map((id) => ({ id, name: `pve${id}`, ns: names[id - 1]!, proc: undefined, state: "dead" }));
  const startNode = (n: Node) => {
    const o: SimNodeOptions = {
      root, nodeId: n.id, nodeName: n.name, db: join(dir, `${n.name}.db`), log, speed, simBase: SIM_BASE, realBase,
      schedule: SCHEDULE, workMinMs: 1_000, workMaxMs: 4_000,
    };
    n.proc = spawn("ip", ["netns", "exec", n.ns, process.execPath, script, JSON.stringify(o)], { stdio: ["ignore", "ignore", "inherit"] });
    n.state = "up";
  };
  const started = Date.now();
  let kills = 0, pauses = 0, quorumLosses = 0;
  try {
    for (const n of nodes) startNode(n);
    const simEnd = SIM_BASE + opts.ticks * TICK_MS;
    const timers: Promise<void>[] = [];
    while (simNow() < simEnd) {
      // A disturbance every 200–600 s of sim time (each one costs up to the lock's 120 s).
      await sleep((200_000 + random() * 400_000) / speed);
      if (simNow() >= simEnd) break;
      // Mostly the current holder (the lock's writer), else any node.
      const writer = (() => { try { return JSON.parse(readFileSync(join(root, "priv/lock/lull-sched-sim/.writer"), "utf8")).nodeId as number; } catch { return undefined; } })();
      const n = (writer !== undefined && random() < 0.7 ? nodes[writer - 1] : nodes[Math.floor(random() * 3)])!;
      // kill -9, SIGSTOP and quorum loss in turn, so even a short run has each.
      const r = ((kills + pauses + quorumLosses) % 3) / 3 + random() * 0.01;
      if (n.state !== "up") continue;
      if (r < 0.3) {
        kills++;
        n.proc!.kill("SIGKILL");
        n.state = "dead";
        const back = (200 + random() * 1500) * (100 / speed);
        timers.push(sleep(back).then(() => startNode(n)));
      } else if (r < 0.6) {
        pauses++;
        n.proc!.kill("SIGSTOP");
        n.state = "paused";
        // Longer than the lock's 120 s.
        const simPause = 150_000 + random() * 100_000;
        timers.push(sleep(simPause / speed).then(() => { n.proc!.kill("SIGCONT"); n.state = "up"; }));
      } else {
        quorumLosses++;
        await setQuorum(root, n.id, false);
        const simLoss = 20_000 + random() * 80_000;
        timers.push(sleep(simLoss / speed).then(() => setQuorum(root, n.id, true)));
      }
    }
    await Promise.all(timers);
    // Settle: everyone up and quorate long enough to record what it missed.
    for (const n of nodes) await setQuorum(root, n.id, true);
    await sleep(60_000 / speed + 1_000);
    for (const n of nodes) n.proc?.kill("SIGTERM");
    await Promise.all(nodes.map((n) => new Promise<void>((res) => {
      if (!n.proc || n.proc.exitCode !== null || n.proc.signalCode !== null) return res();
      const t = setTimeout(() => { n.proc!.kill("SIGKILL"); res(); }, 5_000);
      n.proc.once("exit", () => { clearTimeout(t); res(); });
    })));
    const realSeconds = (Date.now() - started) / 1000;
    // --- counting ---
    const lines = existsSync(log) ? readFileSync(log, "utf8").trim().split("\n").filter(Boolean).map((l) => JSON.parse(l)) : [];
    // Ticks from the first node's first start (before it, no node had ever run: nothing to report).
    const firstUp = Math.min(...lines.filter((l) => l.ev === "up").map((l) => l.t as number));
    const ticks = ticksBetween(parseCalendarEvent(SCHEDULE), "UTC", firstUp, simEnd);
    const starts = new Map<number, { node: string; t: number }[]>();
    for (const l of lines) if (l.ev === "start") starts.set(l.tick, [...(starts.get(l.tick) ?? []), { node: l.node, t: l.t }]);
    const records = new Map<number, { outcome: string; reason: string; node: string }[]>();
    for (const n of nodes) {
      const db = new Database(join(dir, `${n.name}.db`), { readonly: true });
      for (const r of db.prepare("SELECT tick_at, outcome, reason, node FROM schedule_ticks WHERE schedule_id = 'sim'").all() as { tick_at: number; outcome: string; reason: string; node: string }[]) {
        records.set(r.tick_at, [...(records.get(r.tick_at) ?? []), r]);
      }
      db.close();
    }
    let ran = 0, doubleRuns = 0, unreported = 0, claimedNotRun = 0, reportedNotRun = 0, onTime = 0;
    for (const t of ticks) {
      const s = starts.get(t) ?? [];
      const rec = records.get(t) ?? [];
      if (s.length > 0) ran++;
      if (s.length > 1) doubleRuns++;
      if (s.length > 0 && s[0]!.t - t <= TICK_MS) onTime++;
      if (s.length === 0) {
        if (rec.length === 0) unreported++;
        else {
          reportedNotRun++;
          if (rec.some((r) => r.outcome === "running" || r.outcome === "failed") === false && rec.every((r) => r.reason.includes("already ran on another node"))) claimedNotRun++;
        }
      }
    }
    // A stale-holder action: a chunk of node X's run done after another node started a later run.
    const startList = lines.filter((l) => l.ev === "start");
    let stale = 0;
    const runStart = new Map<string, number>();
    for (const l of lines) if (l.ev === "start") runStart.set(`${l.node}:${l.tick}`, l.t);
    for (const l of lines) {
      if (l.ev !== "chunk") continue;
      const mine = runStart.get(`${l.node}:${l.tick}`) ?? l.t;
      if (startList.some((s) => s.node !== l.node && s.tick > l.tick && s.t > mine && s.t < l.t)) stale++;
    }
    // Stops because the lease was lost (a run cut at its deadline has no lostAt).
    const stops = lines.filter((l) => l.ev === "stop" && typeof l.lostAt === "number");
    const stopGapsMs = stops.map((l) => l.t - l.lostAt).sort((a, b) => a - b);
    const stopSinceRenewMs = stops.map((l) => l.t - l.lostRenewAt).sort((a, b) => a - b);
    return {
      ticks: ticks.length, ran, doubleRuns, unreportedMisses: unreported, claimedNotRun, recordedMissedOrSkipped: reportedNotRun,
      staleHolderActions: stale, kills, pauses, quorumLosses, stopGapsMs, stopSinceRenewMs,
      onTimeShare: ticks.length ? onTime / ticks.length : 0, realSeconds, ticksPerSecond: ticks.length / realSeconds,
    };
  } finally {
    for (const n of nodes) { try { n.proc?.kill("SIGCONT"); n.proc?.kill("SIGKILL"); } catch { /* exited */ } }
    dropNamespaces(tag, names);
    say(`simulation directory ${dir}`);
    if (!process.env.LULL_KEEP_SIM) rmSync(dir, { recursive: true, force: true });
  }
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

export function describe(r: SimulationResult): string {
  const g = r.stopGapsMs;
  return [
    `ticks ${r.ticks}  ran ${r.ran}  double runs ${r.doubleRuns}  unreported misses ${r.unreportedMisses}  recorded missed/skipped (not run) ${r.recordedMissedOrSkipped}  claimed-but-not-run ${r.claimedNotRun}`,
    `chaos: kill -9 ${r.kills}  SIGSTOP pauses ${r.pauses}  quorum losses ${r.quorumLosses}  stale-holder actions ${r.staleHolderActions}`,
    `lease loss found → work stop (sim s, n=${g.length}): p50 ${(percentile(g, 50) / 1000).toFixed(1)}  p95 ${(percentile(g, 95) / 1000).toFixed(1)}  max ${((g.at(-1) ?? NaN) / 1000).toFixed(1)}  (target ≤ 60)`,
    `work stop after the first renew that failed or was due (sim s; a SIGSTOP pause counts here): p50 ${(percentile(r.stopSinceRenewMs, 50) / 1000).toFixed(1)}  p95 ${(percentile(r.stopSinceRenewMs, 95) / 1000).toFixed(1)}  max ${((r.stopSinceRenewMs.at(-1) ?? NaN) / 1000).toFixed(1)}`,
    `on time (started within one 5 s cadence): ${(r.onTimeShare * 100).toFixed(1)} %   ${r.ticksPerSecond.toFixed(1)} ticks/s over ${r.realSeconds.toFixed(0)} s`,
  ].join("\n");
}
