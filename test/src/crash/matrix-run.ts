// The crash matrix: N iterations on one site of real daemons (rebuilt after an iteration that
// left problems, so one failure does not hide the next), a watcher attached throughout, and a
// tally of what happened. See matrix.ts for the command line.
import { EventFollower, Site, loopBtrfsUnavailable, readAllEvents, type SiteGuestSpec } from "../support/index.js";
import { faultFor, seededRandom } from "./faults.js";
import { runIteration, type DeadlineTiming, type IterationContext, type IterationResult, type Problem, type ProblemCategory } from "./matrix-iteration.js";

export interface MatrixOptions {
  iterations: number;
  seed: number;
  print: (line: string) => void;
}

export interface MatrixSummary {
  seed: number;
  runs: number;
  jobs: number;
  btrfs: boolean;
  durationMs: number;
  stacksStopped: number;
  stacksResumed: number;
  problems: Record<ProblemCategory, number>;
  outcomes: Map<string, number>;
  faults: Map<string, number>;
  failedIterations: number[];
  deadlineTimings: DeadlineTiming[];
}

export const DEADLINE_MS = 12_000;
/** The controllers start a stack this long before its deadline, so it runs again by it. */
export const LEAD_MS = 4_000;
const ITERATION_TIMEOUT_MS = 180_000;
const MAX_KILL_DELAY_MS = 2_500;

export const CATEGORIES: ProblemCategory[] = ["not-resumed", "leak", "marker", "stuck", "double-stop", "untold", "dishonest", "late-resume"];

async function buildSite(btrfs: boolean): Promise<Site> {
  const guests: SiteGuestSpec[] = [
    { id: "gc", storage: "dir-copy", stacks: ["app"], seedBytes: 6 * 1024 ** 2 },
    { id: "gn", storage: "dir-none", stacks: ["app"], seedBytes: 3 * 1024 ** 2 },
    { id: "gb", storage: btrfs ? "btrfs" : "dir-copy", stacks: ["app", { name: "db", resume: "end" }], seedBytes: 6 * 1024 ** 2 },
  ];
  return Site.start({
    guests,
    agentConfig: { quiesce: { timeoutMs: 10_000, policy: "fail" }, zstdLevel: 3 },
    // zstd starts 700 ms late: archiving lasts long enough for random kills to land in it.
    slowAgentCommands: [{ command: "zstd", delayMs: 700 }],
    controller: { resumeDeadlineMs: DEADLINE_MS, resumeLeadMs: LEAD_MS, pollIntervalMs: 300, leaseTtlMs: 15_000 },
    btrfsSizeBytes: 1024 ** 3,
  });
}

/** The watcher got exactly the persisted events, in order, once each. */
async function watcherProblems(site: Site, follower: EventFollower): Promise<Problem[]> {
  const persisted = await readAllEvents(site.agent.socketAddress, 20_000);
  const last = persisted.at(-1)?.seq ?? 0;
  await follower.waitFor(`event #${last}`, (e) => e.seq === last, 10_000).catch(() => undefined);
  const problems: Problem[] = [];
  const dups = follower.duplicates();
  if (dups.length > 0) problems.push({ category: "untold", detail: `the watcher got ${dups.length} events twice (first #${dups[0]})` });
  const seen = new Set(follower.seqs());
  const missed = persisted.filter((e) => !seen.has(e.seq));
  if (missed.length > 0) problems.push({ category: "untold", detail: `the watcher missed ${missed.length} of ${persisted.length} events (first #${missed[0]!.seq})` });
  const ordered = follower.seqs().every((s, i, all) => i === 0 || s > all[i - 1]!);
  if (!ordered) problems.push({ category: "untold", detail: "the watcher got events out of order" });
  return problems;
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function diagnostics(site: Site): string {
  const parts = [`--- agent (tail)\n${site.agent.proc.tail(15)}`];
  for (const s of site.stacks) if (s.controller) parts.push(`--- controller ${s.key} (tail)\n${s.controller.proc.tail(10)}`);
  return parts.join("\n");
}

export async function runMatrix(o: MatrixOptions): Promise<MatrixSummary> {
  const t0 = Date.now();
  const btrfs = (await loopBtrfsUnavailable()) === undefined;
  const rng = seededRandom(o.seed);
  const summary: MatrixSummary = {
    seed: o.seed,
    runs: 0,
    jobs: 0,
    btrfs,
    durationMs: 0,
    stacksStopped: 0,
    stacksResumed: 0,
    problems: Object.fromEntries(CATEGORIES.map((c) => [c, 0])) as Record<ProblemCategory, number>,
    outcomes: new Map(),
    faults: new Map(),
    failedIterations: [],
    deadlineTimings: [],
  };
  const bump = (m: Map<string, number>, k: string) => m.set(k, (m.get(k) ?? 0) + 1);
  const record = (problems: readonly Problem[]) => problems.forEach((p) => (summary.problems[p.category] += 1));

  let site: Site | undefined;
  let follower: EventFollower | undefined;
  const closeSite = async (checkWatcher: boolean) => {
    if (site && follower && checkWatcher) {
      const problems = await watcherProblems(site, follower).catch((err: unknown) => [{ category: "untold" as const, detail: `watcher check: ${(err as Error).message}` }]);
      problems.forEach((p) => o.print(`  watcher: ${p.detail}`));
      record(problems);
    }
    await follower?.stop().catch(() => undefined);
    await site?.teardown().catch((err: unknown) => o.print(`  teardown: ${(err as Error).message}`));
    site = undefined;
    follower = undefined;
  };
  try {
    for (let i = 0; i < o.iterations; i++) {
      if (!site) {
        site = await buildSite(btrfs);
        follower = new EventFollower({ address: site.agent.socketAddress });
      }
      const stacks = site.stacks.map((s) => s.key);
      const fault = faultFor(i, rng, stacks, MAX_KILL_DELAY_MS);
      const ctx: IterationContext = { site, follower: follower!, deadlineMs: DEADLINE_MS, convergeTimeoutMs: 60_000 };
      let result: IterationResult;
      try {
        result = await withTimeout(runIteration(ctx, i + 1, fault), ITERATION_TIMEOUT_MS, `iteration ${i + 1}`);
      } catch (err) {
        result = { index: i + 1, fault: JSON.stringify(fault), family: fault.kind, durationMs: 0, outcomes: [], stopped: 0, resumed: 0, problems: [{ category: "stuck", detail: (err as Error).message }], deadlineTimings: [] };
      }
      summary.runs += 1;
      summary.jobs += result.outcomes.length;
      summary.stacksStopped += result.stopped;
      summary.stacksResumed += result.resumed;
      result.outcomes.forEach((out) => bump(summary.outcomes, out));
      bump(summary.faults, result.family);
      record(result.problems);
      summary.deadlineTimings.push(...result.deadlineTimings);
      const ok = result.problems.length === 0;
      o.print(`#${result.index} ${result.fault} ${(result.durationMs / 1000).toFixed(1)}s ${result.outcomes.join(",")} stopped ${result.resumed}/${result.stopped} ${ok ? "ok" : "PROBLEMS"}`);
      if (!ok) {
        summary.failedIterations.push(result.index);
        result.problems.forEach((p) => o.print(`  ${p.category}: ${p.detail}`));
        o.print(diagnostics(site));
        await closeSite(true);
      }
    }
    await closeSite(true);
  } finally {
    await closeSite(false);
  }
  summary.durationMs = Date.now() - t0;
  return summary;
}

export function summaryFailed(s: MatrixSummary): boolean {
  return CATEGORIES.some((c) => s.problems[c] > 0) || s.stacksResumed !== s.stacksStopped;
}

function deadlineLines(timings: readonly DeadlineTiming[]): string[] {
  if (timings.length === 0) return ["  resumes by the deadline (agent down)           0"];
  const max = (k: keyof Omit<DeadlineTiming, "stack">) => Math.max(...timings.map((t) => t[k]));
  const late = timings.filter((t) => t.runningLateMs > 0).length;
  const margin = -max("runningLateMs");
  return [
    `  ${"resumes by the deadline (agent down)".padEnd(44)} ${timings.length}`,
    `    timer fired at most ${max("firedLateMs")} ms after the resume point (deadline - ${LEAD_MS} ms), start command run at most ${max("startLateMs")} ms after it`,
    `    app running again ${margin >= 0 ? `at least ${margin} ms before` : `${-margin} ms after`} the deadline (${late} of ${timings.length} after it)`,
  ];
}

export function formatSummary(s: MatrixSummary): string {
  const row = (label: string, value: number | string) => `  ${label.padEnd(44)} ${value}`;
  const lines = [
    `crash matrix: seed ${s.seed}, ${s.runs} iterations in ${(s.durationMs / 1000).toFixed(1)} s (btrfs guest: ${s.btrfs ? "loop-mounted btrfs" : "dir copy instead"})`,
    row("runs", s.runs),
    row("jobs", s.jobs),
    row("stacks stopped", s.stacksStopped),
    row("stacks resumed", s.stacksResumed),
    ...CATEGORIES.map((c) => row(c === "stuck" ? "stuck jobs" : c === "leak" ? "leaks" : c, s.problems[c])),
    ...deadlineLines(s.deadlineTimings),
    "outcomes by phase:",
    ...[...s.outcomes.entries()].sort((a, b) => b[1] - a[1]).map(([k, v]) => row(k, v)),
    "faults:",
    ...[...s.faults.entries()].sort().map(([k, v]) => row(k, v)),
    `result: ${summaryFailed(s) ? `FAIL (iterations ${s.failedIterations.join(", ") || "-"})` : "PASS"}`,
  ];
  return lines.join("\n");
}
