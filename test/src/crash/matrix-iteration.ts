// One iteration of the crash matrix: a backup of every guest at once, one fault injected (see
// faults.ts), the daemons restarted, then convergence checked from real state (convergence.ts)
// plus write isolation of every archive that was produced and, when the agent stayed away past
// the deadline, the resume timing.
import { Phase } from "@lull/proto";
import { readRecords, recordsFile } from "../demo/records.js";
import { outageOf } from "../e2e/timeline.js";
import { awaitConvergence, countInvocations, outcomeOf, sleep, type EventFollower, type JobRef, type LogLine, type Site, type SiteStack } from "../support/index.js";
import { isolationProblems } from "./archive-records.js";
import { describeFault, faultFamily, type Fault } from "./faults.js";

export type ProblemCategory = "leak" | "stuck" | "not-resumed" | "marker" | "double-stop" | "untold" | "dishonest" | "late-resume";

export interface Problem {
  category: ProblemCategory;
  detail: string;
}

/** A resume by the deadline while the agent was down: ms after the deadline. */
export interface DeadlineTiming {
  stack: string;
  /** The deadline timer's log line, after the marker's resume point (deadline minus lead). */
  firedLateMs: number;
  /** The start command spawned, after the resume point. */
  startLateMs: number;
  /** The app's first record after the outage, relative to the deadline (negative: before it). */
  runningLateMs: number;
}

export interface IterationResult {
  index: number;
  fault: string;
  family: string;
  durationMs: number;
  outcomes: string[];
  /** Stacks stopped during the iteration, and how many of them run again at its end. */
  stopped: number;
  resumed: number;
  problems: Problem[];
  deadlineTimings: DeadlineTiming[];
}

export interface IterationContext {
  site: Site;
  follower: EventFollower;
  /** The controllers' resume deadline. */
  deadlineMs: number;
  convergeTimeoutMs: number;
}

const TERMINAL = new Set(["done", "failed", "cancelled"]);

/** Waits until a job paused at the agent's failpoint, then until every job paused or ended (at most `settleMs` more). */
async function waitForAgentPause(site: Site, jobIds: readonly string[], mark: number, timeoutMs: number, settleMs = 1_500): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let firstPauseAt: number | undefined;
  while (Date.now() < deadline) {
    const logs = site.agent.proc.logs.slice(mark);
    const paused = new Set(logs.filter((l) => l.msg === "paused at failpoint").map((l) => l.jobId));
    const ended = new Set(logs.filter((l) => l.msg === "job phase changed" && TERMINAL.has(String(l.to))).map((l) => l.jobId));
    if (paused.size > 0) firstPauseAt ??= Date.now();
    if (jobIds.every((id) => paused.has(id) || ended.has(id))) return;
    if (firstPauseAt !== undefined && Date.now() - firstPauseAt >= settleMs) return; // a frozen thread holds the rest
    if (site.agent.proc.exitStatus) return;
    await sleep(25);
  }
}

async function restartAllControllers(site: Site): Promise<void> {
  for (const stack of site.stacks) await site.startController(stack);
}

/**
 * The agent stays down past the deadline: every stack it held stopped is resumed without it. The
 * controller's part must be on time (timer ≤ 250 ms late, start command begun ≤ 1 s after the
 * deadline); when the app itself runs again depends on how long it takes to start on this machine,
 * which is measured and reported.
 */
async function agentDownPastDeadline(ctx: IterationContext, since: number, problems: Problem[], timings: DeadlineTiming[]): Promise<void> {
  const { site } = ctx;
  const held = site.stacks.filter((s) => s.markerPresent());
  const marks = new Map(held.map((s) => [s, s.controller!.proc.mark()]));
  await site.agent.kill9();
  const killedAt = Date.now();
  for (const s of held) {
    const byMsg = (msg: string) => (l: LogLine) => l.msg === msg;
    let line: LogLine;
    try {
      line = await s.controller!.proc.waitForLog(byMsg("stack resumed"), ctx.deadlineMs + 8_000, marks.get(s));
    } catch (err) {
      problems.push({ category: "not-resumed", detail: `${s.key}: not resumed while the agent was down: ${(err as Error).message.split("\n")[0]}` });
      continue;
    }
    // Resumed for another cause (a start already under way at the kill) is fine; by the deadline, it must be in time.
    const passed = s.controller!.proc.logs.slice(marks.get(s)).find(byMsg("resume deadline near — resuming the stack"));
    if (line.cause !== "deadline" || !passed) continue;
    const deadline = Date.parse(String(passed.resumeDeadline));
    const resumeAt = Date.parse(String(passed.resumeAt));
    const start = s.ledgerEntries().find((e) => e.verb === "start" && e.event === "begin" && e.at >= killedAt);
    const startBegin = start?.spawnedAt ?? start?.at ?? NaN; // when the controller ran the start command
    const outage = outageOf(readRecords(recordsFile(s.dataDir)), since);
    const t: DeadlineTiming = {
      stack: s.key,
      firedLateMs: Date.parse(String(passed.time)) - resumeAt,
      startLateMs: startBegin - resumeAt,
      runningLateMs: outage.firstAfter.at - deadline,
    };
    timings.push(t);
    const late = (detail: string) => problems.push({ category: "late-resume", detail: `${s.key}: ${detail}` });
    if (!(t.firedLateMs <= 250)) late(`the deadline timer fired ${t.firedLateMs} ms after the resume point`);
    if (!(t.startLateMs <= 1_000)) late(`the start command ran ${t.startLateMs} ms after the resume point`);
    if (!(t.runningLateMs <= 0)) late(`the app ran again ${t.runningLateMs} ms after its resume deadline`);
    if (!(outage.firstAfter.at > killedAt)) late("the outage seen in its records ended before the kill");
  }
  await site.restartAgent(); // waits for the controllers whose leases may have run out to register again
}

async function inject(ctx: IterationContext, fault: Fault, jobIds: string[], agentMark: number, since: number, problems: Problem[], timings: DeadlineTiming[]): Promise<void> {
  const { site } = ctx;
  switch (fault.kind) {
    case "agent-failpoint":
      await waitForAgentPause(site, jobIds, agentMark, 30_000);
      await site.agent.kill9();
      await site.restartAgent();
      return;
    case "agent-down-past-deadline":
      await waitForAgentPause(site, jobIds, agentMark, 30_000);
      await sleep(300); // the controllers' acknowledgements land
      await agentDownPastDeadline(ctx, since, problems, timings);
      return;
    case "controller-failpoint": {
      const stack = site.stacks.find((s) => s.key === fault.stack)!;
      await stack.controller!.proc.waitForLog((l) => l.msg === "paused at failpoint", 30_000).catch(() => undefined);
      await stack.controller!.kill9();
      await site.startController(stack);
      return;
    }
    case "agent-kill":
      await sleep(fault.delayMs);
      await site.agent.kill9();
      await site.restartAgent();
      return;
    case "controller-kill": {
      const stack = site.stacks.find((s) => s.key === fault.stack)!;
      await sleep(fault.delayMs);
      await stack.controller!.kill9();
      await sleep(fault.downMs);
      await site.startController(stack);
      return;
    }
    case "all-kill":
      await sleep(fault.delayMs);
      await Promise.all([site.agent.kill9(), ...site.stacks.map((s) => s.controller!.kill9())]);
      await site.restartAgent();
      await restartAllControllers(site);
      return;
    case "none":
      return;
  }
}

/** Prepares the daemons for the fault (failpoints are set at start-up). */
async function prepare(site: Site, fault: Fault): Promise<void> {
  if (fault.kind === "agent-failpoint" || fault.kind === "agent-down-past-deadline") await site.restartAgent(`pause-in:${fault.phase}`);
  if (fault.kind === "controller-failpoint") {
    const stack = site.stacks.find((s) => s.key === fault.stack)!;
    await site.startController(stack, { failpoint: fault.point });
  }
}

function stacksOfJob(site: Site, guestId: string): SiteStack[] {
  return site.stacks.filter((s) => s.guestId === guestId);
}

export async function runIteration(ctx: IterationContext, index: number, fault: Fault): Promise<IterationResult> {
  const { site } = ctx;
  const t0 = Date.now();
  const problems: Problem[] = [];
  await prepare(site, fault);
  const agentMark = site.agent.proc.mark();
  const since = Date.now();
  const guests = [...new Set(site.stacks.map((s) => s.guestId))];
  const jobs: JobRef[] = [];
  for (const guestId of guests) {
    const { job } = await site.agent.client().startBackup(guestId);
    jobs.push({ guestId, jobId: job!.id });
  }
  const deadlineTimings: DeadlineTiming[] = [];
  await inject(ctx, fault, jobs.map((j) => j.jobId), agentMark, since, problems, deadlineTimings);

  const report = await awaitConvergence(site, { jobs, sinceMs: since, followers: [ctx.follower], timeoutMs: ctx.convergeTimeoutMs });
  const add = (category: ProblemCategory, items: string[]) => items.forEach((detail) => problems.push({ category, detail }));
  add("stuck", report.stuck);
  add("dishonest", report.dishonest);
  add("not-resumed", report.notRunning);
  add("marker", report.markers);
  add("leak", report.leftovers);
  add("double-stop", report.doubleStops);
  add("untold", report.untold);
  for (const job of report.jobs) {
    const names = stacksOfJob(site, job.guestId).map((s) => s.name);
    if (job.phase === Phase.PHASE_DONE) {
      const missing = names.filter((n) => !job.stacks.some((s) => s.stack === n));
      if (missing.length > 0) add("dishonest", [`${job.id}: done without quiescing ${missing.join(", ")}`]);
      add("dishonest", await isolationProblems(job, names).catch((err: unknown) => [`${job.id}: archive unreadable: ${(err as Error).message}`]));
    }
  }
  let stopped = 0;
  let resumed = 0;
  for (const s of site.stacks) {
    if (countInvocations(s.ledgerEntries(), "stop", since) === 0) continue;
    stopped += 1;
    if (!report.notRunning.some((n) => n.startsWith(`${s.key}:`))) resumed += 1;
  }
  return {
    index,
    fault: describeFault(fault),
    family: faultFamily(fault),
    durationMs: Date.now() - t0,
    outcomes: report.jobs.map(outcomeOf),
    stopped,
    resumed,
    problems,
    deadlineTimings,
  };
}
