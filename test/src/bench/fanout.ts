#!/usr/bin/env node
// `npm run bench:fanout` (root): how one agent delivers its events when many watchers follow it.
// A real lull-agent (dir driver, tiny guests) and, in this process's client threads, N watchers: most are
// controllers over TLS, each with its own per-stack token and a registration lease, following its
// guest's events and acknowledging each quiesce — as lull-controller does: its stream holds the
// lease and asks only for what the controller acts on (`for_stack`: its own stack's STACK events,
// no PROGRESS); with `--legacy-controllers`, as controllers did before: the lease renewed by
// RegisterStack every 5 s (a third of its TTL) and every event of the guest; the rest are operators' dashboards on the unix socket following every event. Then
// backups run on several guests at once, round after round. For each N it prints the per-event
// delivery delay (the agent's event time → receipt here) p50/p99/max, per transport, the agent's
// RSS and CPU, and refused or missed deliveries; then the quiesce barrier's time with K stacks on
// one guest. Targets: 500 watchers p99 ≤ 50 ms and RSS ≤ 200 MB; 2000 watchers p99 ≤ 100 ms.
// A missed target is not a failure (the machine is shared); the exit code is non-zero only when the
// benchmark itself broke (a backup failed, a watcher missed events).
//   node test/dist/bench/fanout.js [--watchers 50,200,500,2000] [--guests 20] [--busy 4] [--rounds 3]
//     [--dashboards 5] [--barrier 1,10,50] [--barrier-rounds 3] [--client-threads CORES/2] [--legacy-controllers] [--keep]
// N counts every watcher: `--dashboards` of them (operators' terminals and dashboards) follow every
// event on the unix socket, the rest are controllers. The watchers run in `--client-threads` worker
// threads (fanout-watchers.ts; default half the cores), and each thread's event-loop utilisation
// is printed, so a client that could not keep up shows. On 2 cores one client thread was not
// saturated even at 2000 watchers (about 60 % busy), while 4 threads took the cores from the agent
// (its event-loop thread waited for a CPU half the time) and doubled the delays: more threads
// only help where there are cores to spare. Beside the delay the bench prints what the agent says of
// the same window (agent-side.ts): its events' `at` until the bus, and its event-loop lag.
import { mkdir, writeFile } from "node:fs/promises";
import { availableParallelism } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { TokenStore } from "@lull/agent/testing";
import { Phase } from "@lull/proto";
import { phaseName } from "@lull/shared";
import { connectTestClient, makeTempDir, removeDir, startAgent, type AgentProcess, type TestAgentClient, type TestGuest } from "../support/index.js";
import { agentSideOf, fmtAgentSide, scrapeMetrics, type AgentSide } from "./agent-side.js";
import { WatcherThreads, type DeliveredEvent, type ThreadReport, type WatcherSpec } from "./fanout-watchers.js";
import { cpuSeconds, fmtMs, mainThreadSched, intOption, machineNote, medianOf, percentile, printTable, rssMiB, type Row } from "./figures.js";

const say = (text: string) => process.stdout.write(`${text}\n`);
const JOB_TIMEOUT_MS = 120_000;
export const FANOUT_TARGETS = { 500: { p99Ms: 50, rssMiB: 200 }, 2000: { p99Ms: 100 } } as const;

interface Options {
  watchers: number[];
  guests: number;
  busy: number;
  rounds: number;
  dashboards: number;
  barrier: number[];
  barrierRounds: number;
  clientThreads: number;
  legacy: boolean;
  keep: boolean;
}

function readOptions(): Options {
  const { values } = parseArgs({
    options: {
      watchers: { type: "string", default: "50,200,500,2000" },
      guests: { type: "string", default: "20" },
      busy: { type: "string", default: "4" },
      rounds: { type: "string", default: "3" },
      dashboards: { type: "string", default: "5" },
      barrier: { type: "string", default: "1,10,50" },
      "barrier-rounds": { type: "string", default: "3" },
      // Half the cores: the client threads share them with the agent under test.
      "client-threads": { type: "string", default: String(Math.max(1, Math.floor(availableParallelism() / 2))) },
      "legacy-controllers": { type: "boolean" },
      keep: { type: "boolean" },
    },
    strict: true,
  });
  const list = (v: string, name: string, max: number) => v.split(",").filter((s) => s !== "").map((s) => intOption(s, name, 1, max));
  const guests = intOption(values.guests, "guests", 1, 200);
  return {
    legacy: values["legacy-controllers"] === true,
    watchers: list(values.watchers, "watchers", 10_000),
    guests,
    busy: Math.min(guests, intOption(values.busy, "busy", 1, 200)),
    rounds: intOption(values.rounds, "rounds", 1, 100),
    dashboards: intOption(values.dashboards, "dashboards", 0, 10_000),
    barrier: list(values.barrier, "barrier", 1_000),
    barrierRounds: intOption(values["barrier-rounds"], "barrier-rounds", 1, 100),
    clientThreads: intOption(values["client-threads"], "client-threads", 1, 64),
    keep: values.keep === true,
  };
}

const guestId = (i: number) => `g${String(i + 1).padStart(3, "0")}`;

interface Site {
  dir: string;
  agent: AgentProcess;
  operator: TestAgentClient;
  tokens: TokenStore;
  /** The agent's metrics listener (the bench reads the agent's own figures there). */
  metricsAddress: string;
}

async function startSite(guests: readonly string[]): Promise<Site> {
  const dir = await makeTempDir("lull-bench-fanout-");
  const testGuests: TestGuest[] = [];
  for (const id of guests) {
    const path = join(dir, "volumes", id);
    await mkdir(path, { recursive: true });
    await writeFile(join(path, "state.json"), JSON.stringify({ id, at: Date.now() }));
    testGuests.push({ id, driver: "dir", snapshot: "copy", volumes: [{ name: "data", path }] });
  }
  const agent = await startAgent({ dir, guests: testGuests, config: { quiesce: { timeoutMs: 60_000, policy: "fail" }, metrics: { address: "127.0.0.1:0" } } });
  const tokens = TokenStore.open(join(dir, "data", "agent.db"));
  const listening = await agent.proc.waitForLog((l) => l.msg === "metrics listening", 20_000);
  // A long call deadline: an agent slowed down by the load under test still answers the bench.
  return { dir, agent, operator: connectTestClient(agent.socketAddress, 120_000), tokens, metricsAddress: String(listening.address) };
}

const scrape = (site: Site) => scrapeMetrics(site.metricsAddress);

async function stopSite(site: Site, keep: boolean): Promise<void> {
  site.tokens.close();
  site.operator.close();
  await site.agent.stop();
  if (keep) say(`kept ${site.dir}`);
  else await removeDir(site.dir);
}

/** Opens the watchers in the client threads; every controller gets a token of its own stack. */
async function openWatchers(site: Site, threads: WatcherThreads, specs: Array<{ transport: "tls" | "socket"; guest?: string; stack: string }>, legacy: boolean): Promise<void> {
  const afterSeq = (await site.operator.info()).lastEventSeq;
  const withTokens: WatcherSpec[] = specs.map((spec) =>
    spec.transport === "socket" ? spec : { ...spec, legacy, token: site.tokens.create({ kind: "guest", guestId: spec.guest, stack: spec.stack }, Date.now()).token },
  );
  await threads.open({ address: site.agent.address, socketAddress: site.agent.socketAddress, fingerprint: site.agent.fingerprint }, withTokens, afterSeq);
}

async function backupRound(site: Site, guests: readonly string[]): Promise<Array<{ guest: string; quiesceMs: number; totalMs: number }>> {
  return Promise.all(
    guests.map(async (guest) => {
      const job = await site.operator.backup(guest, JOB_TIMEOUT_MS);
      if (job.phase !== Phase.PHASE_DONE) throw new Error(`backup of ${guest} ended ${phaseName(job.phase)}: ${job.errorCode} ${job.errorMessage}`);
      return { guest, quiesceMs: job.quiesceMs, totalMs: job.totalMs };
    }),
  );
}

interface FanoutResult {
  n: number;
  events: number;
  tls: number[];
  socket: number[];
  /** Per event, its earliest delivery's delay (any watcher): the agent, gRPC and the transport before the first watcher had it. */
  first: number[];
  rss: { now: number; peak: number };
  cpuPercent: number;
  /** The agent's CPU seconds in the window: less sensitive to the machine's load than the delays. */
  cpuSeconds: number;
  /** Share of the window the agent's event-loop thread was on a CPU, and runnable but waiting for one (the machine's load). */
  loopOnCpuPercent: number;
  loopWaitPercent: number;
  /** The bench's process (every client thread), for comparison: it shares the cores with the agent. */
  watcherCpuPercent: number;
  /** The busiest client thread's event-loop utilisation (0…1): near 1, the clients could not keep up. */
  clientUtilisation: number;
  agentSide: AgentSide;
  setupMs: number;
  refused: number;
  missed: number;
  errors: string[];
}

async function fanout(n: number, o: Options): Promise<FanoutResult> {
  const guests = Array.from({ length: o.guests }, (_, i) => guestId(i));
  const site = await startSite(guests);
  const threads = new WatcherThreads(Math.min(o.clientThreads, n));
  try {
    const socketCount = Math.min(n, o.dashboards);
    const specs = Array.from({ length: n }, (_, i) =>
      i < socketCount ? { transport: "socket" as const, stack: `dash-${i}` } : { transport: "tls" as const, guest: guests[i % guests.length]!, stack: `s${i}` },
    );
    const setupStarted = Date.now();
    await openWatchers(site, threads, specs, o.legacy);
    const setupMs = Date.now() - setupStarted;
    const pid = site.agent.proc.pid;
    const firstSeq = (await site.operator.info()).lastEventSeq;
    const before = await scrape(site);
    const cpu0 = cpuSeconds(pid);
    const sched0 = mainThreadSched(pid);
    const own0 = process.cpuUsage();
    const t0 = Date.now();
    await threads.window(true);
    for (let r = 0; r < o.rounds; r++) await backupRound(site, guests.slice((r * o.busy) % guests.length, ((r * o.busy) % guests.length) + o.busy));
    const lastSeq = (await site.operator.info()).lastEventSeq;
    // Let the last deliveries arrive.
    const deadline = Date.now() + 10_000;
    const all = await site.operator.collectEvents({ afterSeq: firstSeq }, (e) => e.seq >= lastSeq, 30_000);
    const events = all.map((e): DeliveredEvent => [e.seq, e.guestId, e.kind, e.stack]);
    let missed = await threads.missing(events);
    while (missed > 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 200));
      missed = await threads.missing(events);
    }
    await threads.window(false);
    const wall = (Date.now() - t0) / 1000;
    const agentCpu = cpuSeconds(pid) - cpu0;
    const cpuPercent = (agentCpu / wall) * 100;
    const sched = mainThreadSched(pid);
    const own = process.cpuUsage(own0);
    const agentSide = agentSideOf(before, await scrape(site));
    const rss = rssMiB(pid);
    const reports = await threads.report();
    await threads.closeWatchers();
    return {
      n,
      events: all.length,
      tls: reports.flatMap((r) => r.tls),
      socket: reports.flatMap((r) => r.socket),
      first: firstDeliveries(reports),
      rss,
      cpuPercent,
      cpuSeconds: agentCpu,
      loopOnCpuPercent: ((sched.runSeconds - sched0.runSeconds) / wall) * 100,
      loopWaitPercent: ((sched.waitSeconds - sched0.waitSeconds) / wall) * 100,
      watcherCpuPercent: ((own.user + own.system) / 1e6 / wall) * 100,
      clientUtilisation: Math.max(...reports.map((r) => r.utilisation)),
      agentSide,
      setupMs,
      refused: reports.reduce((s, r) => s + r.refused, 0),
      missed,
      errors: reports.flatMap((r) => r.errors).slice(0, 5),
    };
  } catch (err) {
    throw withAgentTail(err, site);
  } finally {
    await threads.terminate();
    await stopSite(site, o.keep);
  }
}

/** Per event, the least of the threads' earliest delays. */
function firstDeliveries(reports: readonly ThreadReport[]): number[] {
  const first = new Map<number, number>();
  for (const r of reports) for (const [seq, delay] of r.first) first.set(seq, Math.min(delay, first.get(seq) ?? Infinity));
  return [...first.values()];
}

/** A broken run says how the agent was doing: its exit status and last lines. */
function withAgentTail(err: unknown, site: Site): Error {
  const e = err instanceof Error ? err : new Error(String(err));
  const exit = site.agent.proc.exitStatus;
  e.message += `\n  agent ${exit ? `exited (code ${exit.code}, signal ${exit.signal})` : "still running"}; its last lines:\n${site.agent.proc.tail(20)}`;
  return e;
}

async function barrier(o: Options): Promise<Array<{ k: number; quiesceMs: number[] }>> {
  const ids = o.barrier.map((k) => `b${k}`);
  const site = await startSite(ids);
  const threads = new WatcherThreads(o.clientThreads);
  const out: Array<{ k: number; quiesceMs: number[] }> = [];
  try {
    for (const k of o.barrier) {
      const guest = `b${k}`;
      await openWatchers(
        site,
        threads,
        Array.from({ length: k }, (_, i) => ({ transport: "tls" as const, guest, stack: `${guest}-s${i}` })),
        o.legacy,
      );
      const quiesceMs: number[] = [];
      for (let r = 0; r < o.barrierRounds; r++) quiesceMs.push(...(await backupRound(site, [guest])).map((x) => x.quiesceMs));
      await threads.closeWatchers();
      out.push({ k, quiesceMs });
    }
  } finally {
    await threads.terminate();
    await stopSite(site, o.keep);
  }
  return out;
}

async function main(): Promise<void> {
  const o = readOptions();
  say(`fan-out: ${o.guests} guests, backups on ${o.busy} at a time, ${o.rounds} rounds; ${o.dashboards} watchers on the unix socket (dashboards: every event), the rest over TLS (own token, ${o.legacy ? "as controllers before: lease renewed by call every 5 s, every event of the guest" : "lease held by the stream, the events of its own stack (for_stack)"}, acks)`);
  say(
    `  the watchers run in ${o.clientThreads} client thread(s) of this process, round-robin (--client-threads; 1 puts every stream in one thread); ` +
      `a delay is receipt here minus the event's \`at\`; "at→publish" is the agent's own histogram of \`at\` until the bus (lull_event_publish_delay_seconds, bucket bounds), "at→hand-off" its histogram, per delivery, of \`at\` until the event was handed to the watcher's stream (lull_event_handoff_delay_seconds), "first delivery" the earliest receipt of each event here, "loop lag" its event-loop delay (nodejs_eventloop_lag_*)`,
  );
  say(machineNote());
  const results: FanoutResult[] = [];
  for (const n of o.watchers) {
    const r = await fanout(n, o);
    results.push(r);
    const both = [...r.tls, ...r.socket];
    say(
      `  N=${n}: ${r.events} events, ${both.length} deliveries (tls ${r.tls.length}, socket ${r.socket.length}); p50 ${fmtMs(percentile(both, 50))} p99 ${fmtMs(percentile(both, 99))} max ${fmtMs(percentile(both, 100))}; first delivery of an event p50 ${fmtMs(percentile(r.first, 50))} p99 ${fmtMs(percentile(r.first, 99))}; ` +
        `at→publish ${fmtAgentSide(r.agentSide)}; agent loop thread on CPU ${r.loopOnCpuPercent.toFixed(0)} %, waiting for a CPU ${r.loopWaitPercent.toFixed(0)} %; ` +
        `RSS ${r.rss.now.toFixed(0)} MiB (peak ${r.rss.peak.toFixed(0)}), CPU ${r.cpuPercent.toFixed(0)} % (bench process ${r.watcherCpuPercent.toFixed(0)} %, busiest client thread ${(r.clientUtilisation * 100).toFixed(0)} % busy); set-up ${r.setupMs} ms; refused ${r.refused}, missed ${r.missed}`,
    );
    if (r.errors.length > 0) say(`    first errors: ${r.errors.join(" | ")}`);
  }
  const rows: Row[] = [];
  for (const r of results) {
    const both = [...r.tls, ...r.socket];
    const p99 = percentile(both, 99);
    const t = (FANOUT_TARGETS as Record<number, { p99Ms: number; rssMiB?: number }>)[r.n];
    rows.push({ name: `N=${r.n} delay p50 / p99 / max`, value: `${fmtMs(percentile(both, 50))} / ${fmtMs(p99)} / ${fmtMs(percentile(both, 100))}`, ...(t ? { target: `p99 <= ${t.p99Ms} ms`, met: p99 <= t.p99Ms } : {}) });
    rows.push({ name: `N=${r.n}   first delivery of an event p50 / p99`, value: `${fmtMs(percentile(r.first, 50))} / ${fmtMs(percentile(r.first, 99))}` });
    rows.push({ name: `N=${r.n}   tls p99 / socket p99`, value: `${fmtMs(percentile(r.tls, 99))} / ${fmtMs(percentile(r.socket, 99))}` });
    rows.push({ name: `N=${r.n}   agent at→publish p50 / p99 (≤ bucket)`, value: `${fmtMs(r.agentSide.publishP50Ms)} / ${fmtMs(r.agentSide.publishP99Ms)}` });
    rows.push({ name: `N=${r.n}   agent at→hand-off to a stream p50 / p99 (≤ bucket)`, value: `${fmtMs(r.agentSide.handoffP50Ms)} / ${fmtMs(r.agentSide.handoffP99Ms)}` });
    rows.push({ name: `N=${r.n}   agent loop lag p99 / max`, value: `${fmtMs(r.agentSide.loopLagP99Ms)} / ${fmtMs(r.agentSide.loopLagMaxMs)}` });
    rows.push({ name: `N=${r.n}   agent loop thread on CPU / waiting for one`, value: `${r.loopOnCpuPercent.toFixed(0)} % / ${r.loopWaitPercent.toFixed(0)} % of the time` });
    rows.push({ name: `N=${r.n}   agent RSS (peak)`, value: `${r.rss.now.toFixed(0)} MiB (${r.rss.peak.toFixed(0)})`, ...(t?.rssMiB ? { target: `<= ${t.rssMiB} MiB`, met: r.rss.peak <= t.rssMiB } : {}) });
    rows.push({ name: `N=${r.n}   agent CPU (bench process)`, value: `${r.cpuPercent.toFixed(0)} % (${r.watcherCpuPercent.toFixed(0)} %) of a core` });
    rows.push({ name: `N=${r.n}   agent CPU per 1000 deliveries`, value: fmtMs((r.cpuSeconds * 1000 * 1000) / Math.max(1, both.length)) });
    rows.push({ name: `N=${r.n}   busiest client thread busy`, value: `${(r.clientUtilisation * 100).toFixed(0)} %` });
    rows.push({ name: `N=${r.n}   refused / missed`, value: `${r.refused} / ${r.missed}`, target: "0 / 0", met: r.refused === 0 && r.missed === 0 });
  }
  const barriers = o.barrier.length > 0 ? await barrier(o) : [];
  for (const b of barriers) rows.push({ name: `barrier K=${b.k} (median of ${b.quiesceMs.length})`, value: fmtMs(medianOf(b.quiesceMs)) });
  printTable(`fan-out (medians where several samples; delays over every delivery; ${o.clientThreads} client thread(s))`, rows, say);
  say(machineNote());
  if (results.some((r) => r.missed > 0)) {
    say("fan-out: some watchers missed events");
    process.exitCode = 1;
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench:fanout failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
