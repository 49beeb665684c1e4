// `lullctl --cluster jobs|backups|schedules|events`: the same views over every node of the cluster,
// merged with a NODE column. A node that does not answer is listed as unreachable with the reason,
// never left out; the exit code says whether every node answered (0), some did not (4) or none (1).
// `events --cluster` follows each node on its own stream and resumes each after its own last
// sequence number (sequence numbers are per agent).
import type { Backup, Job } from "@lull/proto";
import { asLullError, type AgentApi, type LullError } from "@lull/shared";
import type { Command } from "../args.js";
import { askEveryNode, openClusterTargets, type ClusterTargets, type NodeAnswer, type NodeTarget } from "../cluster-targets.js";
import { followEvents } from "../event-follower.js";
import { renderTable } from "../format.js";
import { eventJson, jobJson } from "../json-views.js";
import { JOB_COLUMNS, eventLine, jobRow } from "../render.js";
import { summaryLine } from "./catalog.js";
import { EXIT, printJson, type CommandContext } from "./context.js";
import { scheduleLines } from "./schedules.js";
import { REPLAY_IDLE_MS } from "./events.js";

type ClusterCommand = Extract<Command, { name: "jobs" | "backups" | "schedules" | "events" }>;

const errorJson = (e: LullError) => ({ code: e.code, message: e.message });
const unreachable = (node: string, e: LullError) => `${node}  unreachable: ${e.code}: ${e.message}`;

/** 0: every node answered; 4: some did not; 1: none did. */
export function clusterExit(answered: number, total: number): number {
  if (answered === total) return EXIT.ok;
  return answered === 0 ? EXIT.failed : EXIT.partial;
}

function nodesJson<T>(answers: readonly NodeAnswer<T>[]) {
  return answers.map((a) => (a.ok ? { node: a.node, answered: true } : { node: a.node, answered: false, error: errorJson(a.error) }));
}

function finish<T>(ctx: CommandContext, answers: readonly NodeAnswer<T>[]): number {
  if (!ctx.json) for (const a of answers) if (!a.ok) ctx.out.line(unreachable(a.node, a.error));
  return clusterExit(answers.filter((a) => a.ok).length, answers.length);
}

const newestFirst = (a: { createdAt?: Date | undefined }, b: { createdAt?: Date | undefined }) => (b.createdAt?.getTime() ?? 0) - (a.createdAt?.getTime() ?? 0);

async function clusterJobs(ctx: CommandContext, targets: ClusterTargets, cmd: Extract<Command, { name: "jobs" }>): Promise<number> {
  const answers = await askEveryNode(targets, ctx.settings.nodeTimeoutMs, async (api, signal) => (await api.listJobs({ guestId: cmd.guest ?? "", activeOnly: cmd.active, limit: cmd.limit }, { signal })).jobs);
  const rows: { node: string; job: Job }[] = answers.flatMap((a) => (a.ok ? a.value.map((job) => ({ node: a.node, job })) : []));
  rows.sort((a, b) => newestFirst(a.job, b.job));
  if (ctx.json) printJson(ctx.out, { nodes: nodesJson(answers), jobs: rows.map((r) => ({ node: r.node, ...jobJson(r.job) })) });
  else if (rows.length === 0) ctx.out.line("no jobs");
  else for (const line of renderTable(["NODE", ...JOB_COLUMNS], rows.map((r) => [r.node, ...jobRow(r.job)]))) ctx.out.line(line);
  return finish(ctx, answers);
}

async function pointsOf(api: AgentApi, guest: string | undefined, limit: number, signal: AbortSignal): Promise<Backup[]> {
  const info = await api.getAgentInfo({}, { signal });
  const guests = info.guests.map((g) => g.id).filter((g) => guest === undefined || g === guest);
  const all: Backup[] = [];
  for (const g of guests) all.push(...(await api.listBackups({ guestId: g, limit }, { signal })).backups);
  return all;
}

async function clusterBackups(ctx: CommandContext, targets: ClusterTargets, cmd: Extract<Command, { name: "backups" }>): Promise<number> {
  const answers = await askEveryNode(targets, ctx.settings.nodeTimeoutMs, (api, signal) => pointsOf(api, cmd.guest, cmd.limit, signal));
  const rows = answers.flatMap((a) => (a.ok ? a.value.map((point) => ({ node: a.node, point })) : []));
  rows.sort((a, b) => newestFirst(a.point, b.point));
  if (ctx.json) printJson(ctx.out, { nodes: nodesJson(answers), backups: rows.map((r) => ({ node: r.node, ...r.point })) });
  else if (rows.length === 0) ctx.out.line(cmd.guest ? `guest ${cmd.guest} has no restore point on any node` : "no restore point");
  else for (const r of rows) ctx.out.line(`${r.node}  ${summaryLine(r.point)}`);
  return finish(ctx, answers);
}

async function clusterSchedules(ctx: CommandContext, targets: ClusterTargets, cmd: Extract<Command, { name: "schedules" }>): Promise<number> {
  const answers = await askEveryNode(targets, ctx.settings.nodeTimeoutMs, (api, signal) => api.listSchedules({ scheduleId: cmd.scheduleId ?? "", ticks: cmd.ticks }, { signal }));
  if (ctx.json) {
    printJson(ctx.out, { nodes: nodesJson(answers), schedules: answers.flatMap((a) => (a.ok ? a.value.schedules.map((s) => ({ node: a.node, ...s })) : [])) });
  } else {
    for (const a of answers) {
      if (!a.ok) continue;
      ctx.out.line(`node ${a.node}:`);
      for (const line of scheduleLines(a.value)) ctx.out.line(`  ${line}`);
    }
  }
  return finish(ctx, answers);
}

/** One node's events: replayed (and, with --follow, live), resumed after its own last sequence number. */
async function followNode(ctx: CommandContext, t: NodeTarget, cmd: Extract<Command, { name: "events" }>): Promise<boolean> {
  const say = (text: string, json: Record<string, unknown>) => (ctx.json ? printJson(ctx.out, { node: t.node, ...json }) : ctx.out.line(`${t.node}  ${text}`));
  let printed = 0;
  let down = false;
  const tellDown = (e: LullError) => {
    if (!down) say(`unreachable: ${e.code}: ${e.message}${cmd.follow ? ` (resuming after #${printed} when it answers)` : ""}`, { unreachable: errorJson(e), afterSeq: printed });
    down = true;
  };
  if (!t.api) {
    tellDown(t.problem as LullError);
    return false;
  }
  const api = t.api;
  try {
    let lastSeq = Infinity;
    if (!cmd.follow) {
      lastSeq = (await api.getAgentInfo({}, { signal: AbortSignal.any([ctx.signal, AbortSignal.timeout(ctx.settings.nodeTimeoutMs)]) })).lastEventSeq;
      if (lastSeq === 0) return true;
    }
    const events = followEvents(api, {
      guestId: cmd.guest ?? "",
      jobId: "",
      afterSeq: 0,
      reconnect: cmd.follow,
      giveUpAfterMs: Infinity,
      ...(cmd.follow ? {} : { idleEndMs: REPLAY_IDLE_MS }),
      signal: ctx.signal,
      clock: ctx.clock,
      onBreak: (err) => tellDown(err),
      onRecovered: () => {
        down = false;
        say(`reachable again; resumed after #${printed}`, { reachable: true, afterSeq: printed });
      },
    });
    for await (const event of events) {
      if (ctx.json) printJson(ctx.out, { node: t.node, ...eventJson(event) });
      else ctx.out.line(`${t.node}  ${eventLine(event)}`);
      printed = event.seq;
      if (event.seq >= lastSeq) break;
    }
    return true;
  } catch (err) {
    tellDown(asLullError(err));
    return false;
  }
}

async function clusterEvents(ctx: CommandContext, targets: ClusterTargets, cmd: Extract<Command, { name: "events" }>): Promise<number> {
  const answered = await Promise.all(targets.nodes.map((t) => followNode(ctx, t, cmd)));
  if (ctx.signal.aborted) return EXIT.interrupted;
  return clusterExit(answered.filter(Boolean).length, answered.length);
}

export async function clusterCommand(ctx: CommandContext, cmd: ClusterCommand): Promise<number> {
  const targets = await openClusterTargets(ctx.settings, ctx.api);
  try {
    switch (cmd.name) {
      case "jobs":
        return await clusterJobs(ctx, targets, cmd);
      case "backups":
        return await clusterBackups(ctx, targets, cmd);
      case "schedules":
        return await clusterSchedules(ctx, targets, cmd);
      case "events":
        return await clusterEvents(ctx, targets, cmd);
    }
  } finally {
    // The other nodes' channels: closed here so nothing keeps lullctl running after its answer.
    targets.close();
  }
}
