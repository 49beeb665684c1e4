#!/usr/bin/env node
// `npm run bench:verify` (root): app-level verification of a PostgreSQL point on btrfs.
// A loop-mounted btrfs holds the guest's volume (a subvolume with a PostgreSQL data directory
// filled by pgbench to about `--size` MiB, shut down cleanly), the agent's archives and its
// scratch replicas. lull-agent (btrfs driver) backs it up; then:
//   1. restore vs verify: `--runs` verifications of the point, each timing its restore into the
//      replica (the extractor) and the whole verification (restore + PostgreSQL opening + the
//      queries + teardown). Target: verification <= 2x restore.
//   2. `--cycles` verifications each cut by kill -9 of the agent at a random moment, the agent
//      restarted each time; after each restart: scratch copies and replica processes left.
//      Target: 0.
// Prints every figure beside its target; a missed target is reported, not an error (the machine
// is shared); the exit code is non-zero only when the benchmark itself broke.
//   node test/dist/bench/verify.js [--size MiB] [--runs N] [--cycles N] [--verbose]
import { execFile, execFileSync } from "node:child_process";
import { chmod, chown, readdir } from "node:fs/promises";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { ENTRY_POINTS, loopBtrfsUnavailable, makeTempDir, mountLoopBtrfs, removeDir, startAgent, type AgentProcess } from "../support/index.js";
import { processesWithEnv } from "../support/leftovers.js";
import { postgresBinDir, postgresUnavailable } from "../quiesce/pg-cluster.js";

const say = (text: string) => process.stdout.write(`${text}\n`);

interface Run {
  id: string;
  phase: string;
  reason: string;
  restoreMs: number;
  checkMs: number;
  teardownMs: number;
}

function lullctl(socket: string, ...args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [ENTRY_POINTS.lullctl, "--socket", socket, "--json", ...args], { timeout: 120_000 }, (err, stdout, stderr) => {
      if (err && !stdout) reject(new Error(`lullctl ${args.join(" ")}: ${stderr}`));
      else resolve(stdout);
    });
  });
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? 0 : s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

async function waitEnded(socket: string, pointId: string, id: string, timeoutMs: number): Promise<Run> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const { verifications } = JSON.parse(await lullctl(socket, "verifications", "pg1", "--point", pointId)) as { verifications: Run[] };
    const run = verifications.find((v) => v.id === id);
    if (run && ["passed", "failed", "cancelled"].includes(run.phase)) return run;
    if (Date.now() > deadline) throw new Error(`verification ${id} did not end within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { size: { type: "string", default: "1024" }, runs: { type: "string", default: "3" }, cycles: { type: "string", default: "100" }, verbose: { type: "boolean", default: false } },
  });
  const sizeMiB = Number(values.size);
  const runs = Number(values.runs);
  const cycles = Number(values.cycles);
  if (!Number.isInteger(sizeMiB) || sizeMiB < 16) throw new Error("--size must be an integer of MiB, at least 16");
  const missing = postgresUnavailable() ?? (await loopBtrfsUnavailable());
  if (missing) throw new Error(`bench:verify needs ${missing}`);
  const bin = postgresBinDir()!;

  const dir = await makeTempDir("lull-bench-verify-");
  await chmod(dir, 0o755);
  const fs = await mountLoopBtrfs({ dir, sizeBytes: Math.max(1024, sizeMiB * 4 + 512) * 1024 ** 2 });
  let agent: AgentProcess | undefined;
  try {
    await chmod(fs.mountPoint, 0o755);
    const vol = await fs.createSubvolume("pg1");
    const uid = Number(execFileSync("id", ["-u", "postgres"], { encoding: "utf8" }));
    const gid = Number(execFileSync("id", ["-g", "postgres"], { encoding: "utf8" }));
    await chown(vol, uid, gid);
    const as = (args: string[]) => execFileSync("runuser", ["-u", "postgres", "--", ...args], { encoding: "utf8", stdio: "pipe", timeout: 3_600_000 });
    const data = join(vol, "pgdata");
    const sock = join(dir, "sock");
    execFileSync("mkdir", ["-p", sock]);
    await chown(sock, uid, gid);
    as([join(bin, "initdb"), "-D", data, "-A", "trust", "-U", "postgres", "--no-sync"]);
    as([join(bin, "pg_ctl"), "-D", data, "-o", `-c listen_addresses='' -k ${sock} -p 55390`, "-w", "-l", join(sock, "log"), "start"]);
    const scale = Math.max(1, Math.round(sizeMiB / 15));
    const t0 = Date.now();
    as([join(bin, "pgbench"), "-i", "-q", "-s", String(scale), "-h", sock, "-p", "55390", "postgres"]);
    as([join(bin, "pg_ctl"), "-D", data, "-m", "fast", "-w", "stop"]);
    const du = Number(execFileSync("du", ["-sm", data], { encoding: "utf8" }).split("\t")[0]);
    say(`PostgreSQL data directory: ${du} MiB (pgbench scale ${scale}, ${Math.round((Date.now() - t0) / 1000)} s to fill), shut down cleanly`);

    agent = await startAgent({
      dir,
      guests: [{ id: "pg1", driver: "btrfs", volumes: [{ name: "db", path: vol }] }],
      config: {
        archiveDir: join(fs.mountPoint, "archives"),
        stagingDir: join(fs.mountPoint, "staging"),
        verify: {
          checks: [{ guest: "pg1", stack: "db", check: { type: "postgres", dataDir: "db/pgdata", queries: ["SELECT count(*) FROM pgbench_accounts"] } }],
          timeoutMs: 3_600_000,
          ports: { from: 55391, to: 55399 },
        },
      },
      readyTimeoutMs: 60_000,
    });
    const socket = agent.socketPath!;
    const job = await agent.client().backup("pg1", 3_600_000);
    const pointId = `b-${job.id.slice(2)}`;
    say(`backup ${job.id} done: archive ${(Number(job.archiveBytes) / 1024 ** 2).toFixed(1)} MiB`);
    // The agent verifies the new point by itself; wait for that run first (it is sample 1).
    const scratch = join(fs.mountPoint, "staging", "verify");
    const samples: Run[] = [];
    for (let i = 0; i < runs; i++) {
      let id: string;
      if (i === 0) {
        const deadline = Date.now() + 60_000;
        let first: Run | undefined;
        while (!first && Date.now() < deadline) {
          first = (JSON.parse(await lullctl(socket, "verifications", "pg1", "--point", pointId)) as { verifications: Run[] }).verifications.at(-1);
          if (!first) await new Promise((r) => setTimeout(r, 200));
        }
        if (!first) throw new Error("the agent did not verify the new point by itself");
        id = first.id;
      } else {
        id = (JSON.parse(await lullctl(socket, "verify", "pg1", pointId)) as Run).id;
      }
      const run = await waitEnded(socket, pointId, id, 3_600_000);
      if (run.phase !== "passed") throw new Error(`verification ${run.id} ${run.phase}: ${run.reason}`);
      samples.push(run);
      const total = run.restoreMs + run.checkMs + run.teardownMs;
      say(`verify ${i + 1}/${runs}: restore ${run.restoreMs} ms, check ${run.checkMs} ms, teardown ${run.teardownMs} ms, total ${total} ms, ratio ${(total / run.restoreMs).toFixed(2)}`);
    }
    const restore = median(samples.map((s) => s.restoreMs));
    const total = median(samples.map((s) => s.restoreMs + s.checkMs + s.teardownMs));
    const ratio = total / restore;

    let left = 0;
    let leftProcs = 0;
    let cut = 0;
    const expected = total;
    for (let c = 0; c < cycles; c++) {
      const { id } = JSON.parse(await lullctl(socket, "verify", "pg1", pointId)) as Run;
      const wait = Math.floor(Math.random() * expected);
      await new Promise((r) => setTimeout(r, wait));
      const names = await readdir(scratch).catch(() => [] as string[]);
      if (names.some((n) => n.startsWith("lull-verify-"))) cut += 1;
      await agent.kill9();
      await agent.restart();
      const after = (await readdir(scratch).catch(() => [] as string[])).filter((n) => n.startsWith("lull-verify-"));
      const procs = (await Promise.all(names.map((n) => processesWithEnv("LULL_REPLICA", join(scratch, n))))).flat();
      left += after.length;
      leftProcs += procs.length;
      if (values.verbose) say(`cycle ${c + 1}: ${id} killed after ${wait} ms (replica existed: ${names.length > 0}); left ${after.length} dirs, ${procs.length} processes`);
    }

    say("");
    say("figure                                   value        target");
    say(`restore into the replica (median)        ${String(restore).padStart(8)} ms`);
    say(`verification, all of it (median)         ${String(total).padStart(8)} ms`);
    say(`verification / restore                   ${ratio.toFixed(2).padStart(8)}      <= 2.00   ${ratio <= 2 ? "met" : "MISSED"}`);
    say(`kill -9 cycles (replica present at kill) ${String(cycles).padStart(8)} (${cut})`);
    say(`scratch copies left after restarts       ${String(left).padStart(8)}      0        ${left === 0 ? "met" : "MISSED"}`);
    say(`replica processes left after restarts    ${String(leftProcs).padStart(8)}      0        ${leftProcs === 0 ? "met" : "MISSED"}`);
  } finally {
    await agent?.stop().catch(() => undefined);
    await fs.teardown().catch(() => undefined);
    await removeDir(dir);
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench:verify failed: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
