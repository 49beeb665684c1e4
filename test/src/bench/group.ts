#!/usr/bin/env node
// `npm run bench:group` (root): what a consistency group across nodes costs against the same group
// on one node. Three agents, each in its own network namespace with the test CA laid out as
// /etc/pve (group-cluster.ts), native `dir` copy guests with a demo-app stack each (tiny data) and
// its real lull-controller behind the counted driver. pve1 coordinates every group. For each size
// N (`--sizes`, default 2,5,10) two groups are configured (on every node hosting a member of
// them) and run from pve1: `across-N`, its members spread round-robin over pve1, pve2, pve3
// (member i on node i mod 3, the others as `remote` members), and
// `local-N`, N guests all on pve1. Each round (`--rounds`, default 3) backs up each group once
// (`lullctl backup --group … --wait` on pve1; which layout goes first alternates by round).
//
// Measured per run:
// - barrier: the coordinator's run record, created_at → quiesced_at (the group-wide barrier
//   passed: every stack of every member, on every node, acknowledged its stop; the remote members'
//   joins are inside it), and two parts of it from the stacks' ledgers: run start → the last stack's
//   stop command run by its controller (the word reaching every stack, through the other nodes'
//   agents for remote members), and the last stack's stop ended → the barrier passed (its
//   acknowledgement reaching the coordinator);
// - snapshot skew: the members' snapshot_at, first → last (checked equal to the span the run's
//   `snapshotted` event records);
// - downtime per stack, from the stack's side (the counted driver's ledger): the stop command's
//   begin → the start command's end (p50 and max over the run's stacks); "held" is the part Lull
//   holds it: stop ended (acknowledged) → start began.
// The table gives, per size, each figure across nodes / on one node and the ratio (medians over the
// rounds of each run's figure; the max is the largest of any run). The issue sets no target.
// Broken (exit non-zero): a run that does not end `done`, a skew not as recorded, or a barrier that
// did not hold (a stack acknowledged after the first snapshot or ran again before the last one).
//   node test/dist/bench/group.js [--sizes 2,5,10] [--rounds 3]
// Needs root (ip netns) and iproute2. Every exit path tears the cluster down (SIGINT/SIGTERM too);
// namespaces a killed run left are removed at the start.
import { parseArgs } from "node:util";
import { readLedger, waitFor } from "../support/index.js";
import { GroupCluster } from "../cluster/group-cluster.js";
import { netnsUnavailable, removeStaleNamespaces } from "../cluster/netns.js";
import { intOption, machineNote, printTable } from "./figures.js";
import { comparisonRows, outageOf, recordedSkew, runFigures, runLine, type GroupJson, type Layout, type Outage, type RunFigures } from "./group-figures.js";

const say = (text: string) => process.stdout.write(`${text}\n`);
const NODES = ["pve1", "pve2", "pve3"] as const;
const QUIESCE_TIMEOUT_MS = 30_000;
/** Above the quiesce timeout plus the copies' time, so no stack is resumed by its deadline. */
const RESUME_DEADLINE_MS = 90_000;
const RUN_TIMEOUT_MS = 180_000;

interface Options {
  sizes: number[];
  rounds: number;
}

function readOptions(): Options {
  const { values } = parseArgs({ options: { sizes: { type: "string", default: "2,5,10" }, rounds: { type: "string", default: "3" } }, strict: true });
  const sizes = values.sizes.split(",").filter((s) => s !== "").map((s) => intOption(s, "sizes", 2, 30));
  if (sizes.length === 0) throw new Error("--sizes needs at least one group size");
  return { sizes: [...new Set(sizes)], rounds: intOption(values.rounds, "rounds", 1, 50) };
}

interface Member {
  /** Index of its node in NODES. */
  node: number;
  guestId: string;
  /** As the run names it: `201@pve2` for a member of another node. */
  shownAs: string;
}

const guestIdOf = (node: number, k: number) => `${node + 1}${String(k + 1).padStart(2, "0")}`;

function membersOf(size: number, layout: Layout): Member[] {
  return Array.from({ length: size }, (_, i) => {
    const node = layout === "local" ? 0 : i % NODES.length;
    const guestId = guestIdOf(node, layout === "local" ? i : Math.floor(i / NODES.length));
    return { node, guestId, shownAs: node === 0 ? guestId : `${guestId}@${NODES[node]}` };
  });
}

const groupIdOf = (size: number, layout: Layout) => `${layout}-${size}`;

/**
 * Every node's guests (the largest group of each layout) and every node's groups config: a group is
 * defined on each node that hosts a member (its own guests under `guests`, the others' under
 * `remote`), as a member's node accepts a join only for a group it defines with the asking node.
 */
function layoutOf(sizes: readonly number[]): { guests: string[][]; groups: Array<Array<Record<string, unknown>>> } {
  const guests: Array<Set<string>> = NODES.map(() => new Set());
  const groups: Array<Array<Record<string, unknown>>> = NODES.map(() => []);
  for (const size of sizes) {
    for (const layout of ["across", "local"] as const) {
      const members = membersOf(size, layout);
      for (const m of members) guests[m.node]!.add(m.guestId);
      NODES.forEach((_, node) => {
        const here = members.filter((m) => m.node === node).map((m) => m.guestId);
        if (here.length === 0) return;
        const remote = members.filter((m) => m.node !== node).map((m) => ({ guest: m.guestId, node: NODES[m.node] }));
        groups[node]!.push({ id: groupIdOf(size, layout), guests: here, ...(remote.length > 0 ? { remote } : {}), quiesceTimeoutMs: QUIESCE_TIMEOUT_MS });
      });
    }
  }
  return { guests: guests.map((s) => [...s].sort()), groups };
}

function parseGroup(stdout: string, stderr: string, what: string): GroupJson {
  let group: GroupJson | undefined;
  try {
    const doc = JSON.parse(stdout) as { group?: GroupJson } & GroupJson;
    group = doc.group ?? doc;
  } catch {
    group = undefined;
  }
  if (typeof group?.id !== "string" || !Array.isArray(group.members)) throw new Error(`${what}: no run in lullctl's answer: ${stdout}${stderr}`);
  return group;
}

/** One backup of a group, measured. */
async function runGroup(cluster: GroupCluster, size: number, layout: Layout, round: number): Promise<RunFigures> {
  const members = membersOf(size, layout);
  const started = Date.now();
  const r = await cluster.lullctl(0, ["--json", "backup", "--group", groupIdOf(size, layout), "--wait"], RUN_TIMEOUT_MS);
  if (r.timedOut) throw new Error(`group ${groupIdOf(size, layout)}: lullctl backup --wait did not answer within ${RUN_TIMEOUT_MS} ms`);
  const group = parseGroup(r.stdout, r.stderr, `group ${groupIdOf(size, layout)}`);
  const runId = group.id;
  const events = await cluster.lullctl(0, ["--json", "events", "--group", runId], 20_000);
  const messages = events.stdout.split("\n").filter(Boolean).map((l) => (JSON.parse(l) as { message?: string | null }).message ?? "");
  // Every member's stack runs again (resumed at the point; the run's end does not wait for it).
  const outages = new Map<string, Outage | undefined>();
  await Promise.all(
    members.map(async (m) => {
      const stack = cluster.stack(m.node, m.guestId);
      const outage = await waitFor(`${m.shownAs}'s stack to run again`, () => outageOf(readLedger(stack.ledger), started), 30_000).catch(() => undefined);
      outages.set(m.shownAs, outage);
    }),
  );
  return runFigures({ size, layout, round }, group, outages, recordedSkew(messages));
}

async function bench(cluster: GroupCluster, o: Options, stopped: () => boolean): Promise<RunFigures[]> {
  const runs: RunFigures[] = [];
  for (let round = 1; round <= o.rounds; round++) {
    for (const size of o.sizes) {
      const order: Layout[] = round % 2 === 1 ? ["across", "local"] : ["local", "across"];
      for (const layout of order) {
        if (stopped()) throw new Error("stopped by a signal");
        const run = await runGroup(cluster, size, layout, round);
        runs.push(run);
        say(runLine(run));
      }
    }
  }
  return runs;
}

async function main(): Promise<void> {
  const o = readOptions();
  const unavailable = netnsUnavailable();
  if (unavailable) throw new Error(`bench:group needs ${unavailable}`);
  const stale = removeStaleNamespaces();
  if (stale.length > 0) say(`removed namespaces a killed run left: ${stale.join(", ")}`);
  const { guests, groups } = layoutOf(o.sizes);
  say(`group: sizes ${o.sizes.join(", ")}, ${o.rounds} round(s); across: members round-robin over ${NODES.join(", ")} (pve1 coordinates); local: all on pve1`);
  say(`  guests per node: ${NODES.map((n, i) => `${n} ${guests[i]!.length}`).join(", ")}; one demo-app stack and controller each; dir copies of tiny data`);
  say(machineNote());
  const cluster = await GroupCluster.create({ nodes: NODES, guests, groups, quiesceTimeoutMs: QUIESCE_TIMEOUT_MS, resumeDeadlineMs: RESUME_DEADLINE_MS });
  let signalled = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (signalled) process.exit(130); // a second signal: now
    signalled = true;
    process.stderr.write(`bench:group: ${signal}, tearing the cluster down (again to exit at once)\n`);
    void cluster.teardown().finally(() => process.exit(130));
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  let runs: RunFigures[];
  try {
    const setUp = Date.now();
    await cluster.start();
    say(`  set-up: ${Date.now() - setUp} ms`);
    runs = await bench(cluster, o, () => signalled);
  } finally {
    await cluster.teardown();
  }
  printTable(`group across 3 nodes / the same size on one node, ratio (medians of ${o.rounds} round(s); no target in the issue)`, comparisonRows(runs, o.sizes), say);
  say(machineNote());
  const broken = runs.filter((r) => r.problems.length > 0);
  if (broken.length > 0) {
    say(`group: ${broken.length} run(s) broke: ${broken.flatMap((r) => r.problems).join("; ")}`);
    process.exitCode = 1;
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench:group failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
