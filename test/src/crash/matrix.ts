#!/usr/bin/env node
// `npm run crash-matrix [-- --iterations N --seed S]`: kills the agent and the controllers at
// every phase boundary and at random points (see faults.ts), restarts them, and checks after each
// iteration that the site converged: every stack running, every marker cleared, nothing left
// behind (snapshots, staging, partial archives, mounts, processes), every job ended with an honest
// outcome, every watcher told. Prints one line per iteration and the counts; exits 1 on any leak,
// stuck job, stack not resumed or other problem, 2 on bad usage. Needs root for the btrfs guest
// (without it that guest uses a dir copy, and says so). LULL_TEST_ECHO=1 shows the daemons' logs.
import { parseArgs } from "node:util";
import { formatSummary, runMatrix, summaryFailed } from "./matrix-run.js";

function usage(message: string): never {
  process.stderr.write(`crash-matrix: ${message}\nusage: matrix.js [--iterations N] [--seed S]\n`);
  process.exit(2);
}

function parse(): { iterations: number; seed: number } {
  let values: { iterations?: string | undefined; seed?: string | undefined };
  try {
    ({ values } = parseArgs({ options: { iterations: { type: "string" }, seed: { type: "string" } }, strict: true }));
  } catch (err) {
    usage((err as Error).message);
  }
  const iterations = Number(values.iterations ?? 8);
  const seed = Number(values.seed ?? Math.floor(Math.random() * 2 ** 31));
  if (!Number.isInteger(iterations) || iterations < 1 || iterations > 100_000) usage("--iterations must be a whole number from 1");
  if (!Number.isInteger(seed) || seed < 0 || seed >= 2 ** 32) usage("--seed must be a whole number from 0 to 2^32-1");
  return { iterations, seed };
}

async function main(): Promise<number> {
  const { iterations, seed } = parse();
  const print = (line: string) => process.stdout.write(`${line}\n`);
  print(`crash matrix: ${iterations} iterations, seed ${seed} (rerun with --seed ${seed})`);
  const summary = await runMatrix({ iterations, seed, print });
  print(formatSummary(summary));
  return summaryFailed(summary) ? 1 : 0;
}

process.exitCode = await main();
