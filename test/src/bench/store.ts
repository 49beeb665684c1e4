#!/usr/bin/env node
// `npm run bench:store`: how the job store behaves with a long history. Seeds `--jobs` ended jobs of
// one tiny guest through the real ledgers (each with its stacks and progress events), spread over
// `--days` days, then starts a real lull-agent on that database (retention off) and times, over the
// unix socket: ListJobs (the guest's and every guest's), `lullctl jobs` (the whole process),
// GetJob, a resume of the event stream from sequence 0 (events/s, the median of 3; the shared
// client's, which lullctl and the controller use — WatchEventBatches — and raw WatchEvents, one
// message per event, taken in turn in the same run) and from the last 1,000; then restarts
// the agent with the default retention (90 days, keep 10) and reports the pruning pass, the
// database's size before and after, and the same calls again. Targets: list and get ≤ 20 ms at
// 10,000 jobs, a resume from 0 at ≥ 50,000 events/s, the database under 50 MB after retention.
// A missed target is not a failure (the machine is shared); the exit code is non-zero only when the
// benchmark itself broke.
//   node test/dist/bench/store.js [--jobs 10000] [--days 300] [--samples 20] [--keep]
import { execFile } from "node:child_process";
import { mkdir, stat } from "node:fs/promises";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { JobStore } from "@lull/agent";
import { History } from "@lull/agent/testing";
import type { Event } from "@lull/proto";
import { ENTRY_POINTS, makeTempDir, removeDir, startAgent, type AgentProcess, type TestAgentClient } from "../support/index.js";
import { fmtMs, intOption, machineNote, medianOf, printTable, type Row } from "./figures.js";

const say = (text: string) => process.stdout.write(`${text}\n`);
export const STORE_TARGETS = { listMs: 20, getMs: 20, resumeEventsPerS: 50_000, dbMiB: 50 } as const;
const GUEST = "tiny";
const DAY_MS = 24 * 60 * 60 * 1000;

function readOptions() {
  const { values } = parseArgs({
    options: {
      jobs: { type: "string", default: "10000" },
      days: { type: "string", default: "300" },
      samples: { type: "string", default: "20" },
      keep: { type: "boolean" },
    },
    strict: true,
  });
  return {
    jobs: intOption(values.jobs, "jobs", 10, 1_000_000),
    days: intOption(values.days, "days", 1, 36_500),
    samples: intOption(values.samples, "samples", 1, 1000),
    keep: values.keep === true,
  };
}

async function dbBytes(dataDir: string): Promise<{ main: number; wal: number }> {
  const size = async (p: string) => (await stat(p).catch(() => ({ size: 0 }))).size;
  return { main: await size(join(dataDir, "agent.db")), wal: await size(join(dataDir, "agent.db-wal")) };
}
const mib = (b: number) => `${(b / 1024 / 1024).toFixed(1)} MiB`;

async function timed<T>(fn: () => Promise<T>): Promise<[number, T]> {
  const t = process.hrtime.bigint();
  const v = await fn();
  return [Number(process.hrtime.bigint() - t) / 1e6, v];
}

async function samplesOf(n: number, fn: (i: number) => Promise<unknown>): Promise<number[]> {
  await fn(-1); // warm-up
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push((await timed(() => fn(i)))[0]);
  return out;
}

/**
 * The shared client's event stream (what lullctl and the controller read: WatchEventBatches) from
 * `afterSeq` until `lastSeq` arrived; returns the time and the count.
 */
async function resume(client: TestAgentClient, afterSeq: number, lastSeq: number): Promise<{ ms: number; events: number }> {
  const started = process.hrtime.bigint();
  const stop = new AbortController();
  let events = 0;
  for await (const e of client.api.watchEvents({ guestId: "", jobId: "", afterSeq }, stop.signal)) {
    events += 1;
    if (e.seq >= lastSeq) break;
  }
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  stop.abort();
  return { ms, events };
}

/** The same with the raw WatchEvents stream, one message per event (clients that do not batch). */
function resumeOneByOne(client: TestAgentClient, afterSeq: number, lastSeq: number): Promise<{ ms: number; events: number }> {
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    const stream = client.raw.watchEvents({ guestId: "", jobId: "", afterSeq });
    let events = 0;
    stream.on("data", (e: Event) => {
      events += 1;
      if (e.seq >= lastSeq) {
        const ms = Number(process.hrtime.bigint() - started) / 1e6;
        stream.cancel();
        resolve({ ms, events });
      }
    });
    stream.on("error", (err: Error) => {
      if (!/CANCELLED/.test(err.message)) reject(err);
    });
  });
}

function lullctlJobs(socket: string): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [ENTRY_POINTS.lullctl, "--socket", socket, "jobs"], { timeout: 30_000 }, (err, _out, stderr) =>
      err ? reject(new Error(`lullctl jobs failed: ${stderr}`)) : resolve(),
    );
  });
}

interface CallFigures {
  listGuestMs: number;
  listAllMs: number;
  getMs: number;
  lullctlMs: number;
  resume0: { ms: number; events: number };
  resume0OneByOne: { ms: number; events: number };
  resumeLast1000Ms: number;
}

async function measureCalls(agent: AgentProcess, samples: number): Promise<CallFigures> {
  const c = agent.client();
  const jobs = await c.listJobs(GUEST);
  const ids = jobs.map((j) => j.id);
  // GetJob of jobs across the history: the newest listed, and the oldest the store holds.
  const oldest = (await c.api.listJobs({ guestId: GUEST, activeOnly: false, limit: 1000 })).jobs.map((j) => j.id);
  const pick = [...ids, ...oldest];
  const listGuest = await samplesOf(samples, () => c.api.listJobs({ guestId: GUEST, activeOnly: false, limit: 0 }));
  const listAll = await samplesOf(samples, () => c.api.listJobs({ guestId: "", activeOnly: false, limit: 0 }));
  const get = await samplesOf(samples, (i) => c.getJob(GUEST, pick[(i + pick.length) % pick.length]!));
  const lullctl = await samplesOf(Math.min(5, samples), () => lullctlJobs(agent.socketPath));
  const lastSeq = (await c.info()).lastEventSeq;
  // The two forms taken in turn, three times each (one run moves with the machine's load): the median of each.
  const runs: { batches: number[]; oneByOne: number[] } = { batches: [], oneByOne: [] };
  let events = 0;
  for (let i = 0; i < Math.min(3, samples); i++) {
    runs.oneByOne.push((await resumeOneByOne(c, 0, lastSeq)).ms);
    const r = await resume(c, 0, lastSeq);
    runs.batches.push(r.ms);
    events = r.events;
  }
  const resume0OneByOne = { ms: medianOf(runs.oneByOne), events };
  const resume0 = { ms: medianOf(runs.batches), events };
  const last1000 = await samplesOf(Math.min(5, samples), () => resume(c, Math.max(0, lastSeq - 1000), lastSeq));
  return {
    listGuestMs: medianOf(listGuest),
    listAllMs: medianOf(listAll),
    getMs: medianOf(get),
    lullctlMs: medianOf(lullctl),
    resume0,
    resume0OneByOne,
    resumeLast1000Ms: medianOf(last1000),
  };
}

function callRows(label: string, f: CallFigures): Row[] {
  const rateOf = (r: { ms: number; events: number }) => r.events / (r.ms / 1000);
  const rate = rateOf(f.resume0);
  const oneByOne = rateOf(f.resume0OneByOne);
  return [
    { name: `${label} ListJobs (guest, 50)`, value: fmtMs(f.listGuestMs), target: `<= ${STORE_TARGETS.listMs} ms`, met: f.listGuestMs <= STORE_TARGETS.listMs },
    { name: `${label} ListJobs (every guest, 50)`, value: fmtMs(f.listAllMs), target: `<= ${STORE_TARGETS.listMs} ms`, met: f.listAllMs <= STORE_TARGETS.listMs },
    { name: `${label} GetJob`, value: fmtMs(f.getMs), target: `<= ${STORE_TARGETS.getMs} ms`, met: f.getMs <= STORE_TARGETS.getMs },
    { name: `${label} lullctl jobs (whole process)`, value: fmtMs(f.lullctlMs) },
    {
      name: `${label} resume from 0 (client: WatchEventBatches)`,
      value: `${f.resume0.events} in ${fmtMs(f.resume0.ms)} = ${Math.round(rate)}/s`,
      target: `>= ${STORE_TARGETS.resumeEventsPerS}/s`,
      met: rate >= STORE_TARGETS.resumeEventsPerS,
    },
    {
      name: `${label} resume from 0 (raw WatchEvents, one message per event)`,
      value: `${f.resume0OneByOne.events} in ${fmtMs(f.resume0OneByOne.ms)} = ${Math.round(oneByOne)}/s`,
      target: `>= ${STORE_TARGETS.resumeEventsPerS}/s`,
      met: oneByOne >= STORE_TARGETS.resumeEventsPerS,
    },
    { name: `${label} resume last 1,000 (client)`, value: fmtMs(f.resumeLast1000Ms) },
  ];
}

async function main(): Promise<void> {
  const o = readOptions();
  const dir = await makeTempDir("lull-bench-store-");
  const dataDir = join(dir, "data");
  await mkdir(join(dir, "volumes", GUEST), { recursive: true });
  const guests = [{ id: GUEST, driver: "dir" as const, snapshot: "copy" as const, volumes: [{ name: "data", path: join(dir, "volumes", GUEST) }] }];
  say(`store: ${o.jobs} jobs of guest ${GUEST} over ${o.days} days (each: stack web, 5 progress events)`);
  say(machineNote());
  try {
    await mkdir(dataDir, { recursive: true });
    const seedStarted = Date.now();
    const store = JobStore.open(join(dataDir, "agent.db"));
    const now = Date.now();
    const history = new History(store, now);
    const step = (o.days * DAY_MS) / o.jobs;
    for (let i = 0; i < o.jobs; i += 500) {
      store.transaction(() => {
        for (let k = i; k < Math.min(o.jobs, i + 500); k++) history.ended(GUEST, ((o.jobs - k) * step) / DAY_MS, { progress: 5 });
      });
    }
    const events = store.events.lastSeq();
    store.close();
    const seeded = await dbBytes(dataDir);
    say(`  seeded ${o.jobs} jobs, ${events} events in ${Date.now() - seedStarted} ms; agent.db ${mib(seeded.main)} + wal ${mib(seeded.wal)}`);

    const keepAll = { retention: { jobs: { maxAgeDays: 36_500, keepLast: 10 } } };
    let agent = await startAgent({ dir, guests, config: keepAll });
    const before = await measureCalls(agent, o.samples);
    await agent.stop();
    const beforeBytes = await dbBytes(dataDir);

    // The default retention (90 days, keep the newest 10): the agent prunes at start-up.
    agent = await startAgent({ dir, guests, config: {} });
    const line = await agent.proc.waitForLog((l) => l.msg === "retention pruned ended jobs" || l.msg === "retention pass failed", 600_000);
    if (line.msg !== "retention pruned ended jobs") throw new Error(`retention failed: ${JSON.stringify(line)}`);
    const afterBytes = await dbBytes(dataDir);
    const after = await measureCalls(agent, o.samples);
    const kept = o.jobs - Number(line.jobs);
    await agent.stop();
    const stoppedBytes = await dbBytes(dataDir);

    const total = (b: { main: number; wal: number }) => b.main + b.wal;
    const rows: Row[] = [
      ...callRows(`${o.jobs} jobs:`, before),
      { name: `db at ${o.jobs} jobs (main + wal)`, value: `${mib(beforeBytes.main)} + ${mib(beforeBytes.wal)}` },
      { name: "retention pass", value: `${line.jobs} jobs, ${line.events} events in ${fmtMs(Number(line.durationMs))}` },
      { name: "db after retention, running", value: `${mib(afterBytes.main)} + ${mib(afterBytes.wal)}`, target: `< ${STORE_TARGETS.dbMiB} MiB`, met: total(afterBytes) < STORE_TARGETS.dbMiB * 1024 * 1024 },
      { name: "db after retention, stopped", value: `${mib(stoppedBytes.main)} + ${mib(stoppedBytes.wal)}`, target: `< ${STORE_TARGETS.dbMiB} MiB`, met: total(stoppedBytes) < STORE_TARGETS.dbMiB * 1024 * 1024 },
      ...callRows(`after (${kept} jobs):`, after),
    ];
    printTable("job store (medians)", rows, say);
    say(machineNote());
  } finally {
    if (o.keep) say(`kept ${dir}`);
    else await removeDir(dir);
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench:store failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
