#!/usr/bin/env node
// `npm run bench` (root): how much downtime does resuming at `snapshotted` save, and what does it
// cost beyond stop + snapshot + start? A guest with ~1 GiB in many files on a real btrfs subvolume
// (loop-mounted image), a stack writing into it, lull-agent with the btrfs driver, and per
// round one backup with the controller's `resume: "early"` and one with `resume: "end"` (order
// alternating). Prints every sample, the medians and the targets (overhead <= 50 ms, early/at-end
// <= 2 %) with whether they were met. A missed target is not a failure (the machine is shared and
// noisy); the exit code is non-zero only when the benchmark itself broke.
// The stack is `--stack light` (default: a POSIX sh writer whose start and stop take milliseconds,
// so the figures are Lull's own cost) or `--stack node` (the demo app, whose Node start-up adds
// a few hundred ms to every downtime, with or without early resume).
//   node test/dist/bench/early-resume.js [--rounds N] [--data-mib N] [--stack light|node] [--keep] [--verbose]
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { execa } from "execa";
import { Phase } from "@lull/proto";
import { phaseName } from "@lull/shared";
import {
  ENTRY_POINTS,
  loopBtrfsUnavailable,
  makeTempDir,
  mountLoopBtrfs,
  readResumedLog,
  removeDir,
  startAgent,
  startController,
  writeSeedData,
  type AgentProcess,
} from "../support/index.js";
import { appCtlDriver } from "../demo/app-driver.js";
import { TABLE_HEADER, sampleRow, summarize, summaryLines, type ResumeMode, type Sample } from "./stats.js";

const say = (text: string) => process.stdout.write(`${text}\n`);
const JOB_TIMEOUT_MS = 15 * 60_000;

type StackKind = "light" | "node";

interface BenchOptions {
  stack: StackKind;
  rounds: number;
  dataMiB: number;
  keep: boolean;
  verbose: boolean;
}

function readOptions(): BenchOptions {
  const { values } = parseArgs({
    options: {
      rounds: { type: "string", default: "5" },
      stack: { type: "string", default: "light" },
      "data-mib": { type: "string", default: "1024" },
      keep: { type: "boolean" },
      verbose: { type: "boolean" },
    },
    strict: true,
  });
  const int = (v: string | undefined, name: string, min: number, max: number) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min || n > max) throw new Error(`--${name} must be a whole number from ${min} to ${max}`);
    return n;
  };
  if (values.stack !== "light" && values.stack !== "node") throw new Error("--stack must be light or node");
  return {
    stack: values.stack,
    rounds: int(values.rounds, "rounds", 1, 100),
    dataMiB: int(values["data-mib"], "data-mib", 1, 16_384),
    keep: values.keep === true,
    verbose: values.verbose === true,
  };
}

const LIGHT_STACK = fileURLToPath(new URL("../../fixtures/light-stack.sh", import.meta.url));

/** argv of the stack's start/stop/status script. */
function stackCtl(kind: StackKind, verb: string, dataDir: string): string[] {
  return kind === "light" ? ["/bin/sh", LIGHT_STACK, verb, dataDir] : [process.execPath, ENTRY_POINTS.demoAppCtl, verb, dataDir];
}

function stackDriver(kind: StackKind, dataDir: string) {
  if (kind === "node") return appCtlDriver(dataDir, 60_000);
  const ctl = (verb: string) => stackCtl(kind, verb, dataDir);
  return { type: "command" as const, start: ctl("start"), stop: ctl("stop"), status: ctl("status"), timeoutMs: 60_000, verifyTimeoutMs: 5_000 };
}

async function stackCommand(kind: StackKind, verb: "start" | "stop", dataDir: string): Promise<void> {
  const [file, ...args] = stackCtl(kind, verb, dataDir) as [string, ...string[]];
  const r = await execa(file, args, { shell: false, reject: false, timeout: 30_000 });
  if (r.exitCode !== 0) throw new Error(`stack ${verb} failed: ${String(r.stderr).trim()}`);
}

/** One backup with a fresh controller in `mode`; the sample comes from its `stack resumed` line. */
async function measure(agent: AgentProcess, scratch: string, volume: string, mode: ResumeMode, round: number, options: BenchOptions): Promise<Sample> {
  const { verbose } = options;
  const controller = await startController({
    dir: join(scratch, `controller-${mode}`),
    guestId: "bench",
    stack: "app",
    agent: await agent.credentialsFor("bench", "app"),
    resume: mode,
    driver: stackDriver(options.stack, volume),
    resumeDeadlineMs: JOB_TIMEOUT_MS,
    pollIntervalMs: 200,
    leaseTtlMs: 10_000,
    echo: verbose,
  });
  try {
    const job = await agent.client().backup("bench", JOB_TIMEOUT_MS);
    if (job.phase !== Phase.PHASE_DONE) {
      throw new Error(`job ${job.id} ended ${phaseName(job.phase)}: ${job.errorCode} ${job.errorMessage}`);
    }
    const line = await controller.proc.waitForLog((l) => l.msg === "stack resumed" && l.jobId === job.id, 60_000);
    await controller.proc.waitForLog((l) => l.msg === "backup done" && l.jobId === job.id, 60_000);
    const resumed = readResumedLog(line);
    if (resumed.early !== (mode === "early")) throw new Error(`controller in mode ${mode} reported early=${resumed.early}`);
    if (job.archivePath) await rm(job.archivePath, { force: true }); // keep the disk from filling up
    return { round, mode, ...resumed, snapshotMs: job.snapshotMs, totalMs: job.totalMs };
  } finally {
    await controller.stop(30_000);
  }
}

async function runBench(options: BenchOptions, scratch: string): Promise<void> {
  const dataBytes = options.dataMiB * 1024 ** 2;
  const fs = await mountLoopBtrfs({ dir: scratch, sizeBytes: Math.max(512 * 1024 ** 2, dataBytes * 2 + 512 * 1024 ** 2) });
  const cleanups: Array<() => Promise<unknown>> = [() => fs.teardown()];
  try {
    const volume = await fs.createSubvolume("guest-data");
    const seedStart = Date.now();
    const seeded = await writeSeedData({ dir: join(volume, "files"), totalBytes: dataBytes, fileBytes: 256 * 1024 });
    await execa("sync", [], { shell: false, timeout: 300_000 });
    say(`seeded ${seeded.files} files, ${options.dataMiB} MiB, on btrfs subvolume ${volume} in ${Date.now() - seedStart} ms`);

    const agent = await startAgent({
      dir: join(scratch, "agent"),
      guests: [{ id: "bench", driver: "btrfs", volumes: [{ name: "data", path: volume }] }],
      config: { quiesce: { timeoutMs: 60_000, policy: "fail" }, leaseTtlMs: 10_000 },
      echo: options.verbose,
    });
    cleanups.push(() => agent.stop(60_000));
    await stackCommand(options.stack, "start", volume);
    cleanups.push(() => stackCommand(options.stack, "stop", volume));
    const stackName = options.stack === "light" ? "a POSIX sh writer (--stack light)" : "the demo app, a Node process (--stack node)";
    say(`agent on ${agent.address}; stack: ${stackName} writing into the subvolume; ${options.rounds} rounds of early + at-end`);
    say("");
    say(TABLE_HEADER);

    const samples: Sample[] = [];
    for (let round = 1; round <= options.rounds; round++) {
      const order: ResumeMode[] = round % 2 === 1 ? ["early", "end"] : ["end", "early"];
      for (const mode of order) {
        const sample = await measure(agent, scratch, volume, mode, round, options);
        samples.push(sample);
        say(sampleRow(sample));
      }
    }
    say("");
    for (const line of summaryLines(summarize(samples))) say(line);
    say("(downtime and its parts from the controller's `stack resumed` log; snapshot and backup from the job;");
    say(" overhead = downtime - (stop + snapshot + start); targets are reported, not enforced)");
  } finally {
    for (const cleanup of cleanups.reverse()) {
      await cleanup().catch((err: unknown) => say(`cleanup: ${(err as Error).message}`));
    }
  }
}

async function main(): Promise<number> {
  let options: BenchOptions;
  try {
    options = readOptions();
  } catch (err) {
    process.stderr.write(`bench: ${(err as Error).message}\n`);
    return 2;
  }
  const why = await loopBtrfsUnavailable();
  if (why) {
    process.stderr.write(`bench: cannot run here: a loop-mounted btrfs ${why}\n`);
    return 2;
  }
  const scratch = await makeTempDir("lull-bench-");
  say(`scratch dir: ${scratch}`);
  try {
    await runBench(options, scratch);
  } catch (err) {
    process.stderr.write(`bench: broke: ${(err as Error).stack ?? String(err)}\n`);
    say(`kept ${scratch} for a look`);
    return 1;
  }
  if (options.keep) say(`kept ${scratch}`);
  else await removeDir(scratch);
  return 0;
}

process.exitCode = await main();
