#!/usr/bin/env node
// `npm run demo`: an app-consistent backup of a running app, end to end, on this machine, without
// root or Proxmox. Starts lull-agent (guest `demo`, `dir` driver, snapshot by copy), the demo app
// and its lull-controller, runs `lullctl backup demo --wait`, restores the point (`lullctl restore
// --to`) and checks its records,
// then verifies the restore point on an ephemeral replica (`lullctl verify`, ./verify-check.ts).
// Exit 0 only when every check passes. `--keep` keeps the scratch dir; `--verbose` echoes daemon
// logs; `--data-mib N` (default 256) seeds the app's data dir so that archiving takes a moment.
import { spawn } from "node:child_process";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { execa } from "execa";
import { Phase, type Job } from "@lull/proto";
import { phaseName } from "@lull/shared";
import {
  ENTRY_POINTS,
  makeTempDir,
  readResumedLog,
  removeDir,
  sleep,
  startAgent,
  startController,
  writeSeedData,
} from "../support/index.js";
import { appCtlDriver } from "./app-driver.js";
import { checkRestoredRecords, type Check } from "./restore-check.js";
import { readRecords, recordsFile } from "./records.js";

const say = (text: string) => process.stdout.write(`demo: ${text}\n`);

async function appCtl(verb: "start" | "stop" | "status", dataDir: string): Promise<{ code: number; text: string }> {
  const r = await execa(process.execPath, [ENTRY_POINTS.demoAppCtl, verb, dataDir], { shell: false, reject: false, timeout: 20_000 });
  return { code: r.exitCode ?? -1, text: `${String(r.stdout)}${String(r.stderr)}`.trim() };
}

/** Runs the real lullctl with this terminal, so its live output (and progress bar) shows as is. */
function runLullctl(args: string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [ENTRY_POINTS.lullctl, ...args], { stdio: "inherit", shell: false });
    const timer = setTimeout(() => child.kill("SIGKILL"), 120_000);
    child.on("error", reject);
    child.on("exit", (code, signal) => {
      clearTimeout(timer);
      resolve(code ?? (signal ? 128 : -1));
    });
  });
}

function printChecks(checks: Check[]): boolean {
  say("checks:");
  for (const c of checks) process.stdout.write(`  ${c.ok ? "PASS" : "FAIL"}  ${c.name}: ${c.detail}\n`);
  return checks.every((c) => c.ok);
}

async function runDemo(scratch: string, verbose: boolean, seedMiB: number): Promise<boolean> {
  const appData = join(scratch, "app-data");
  await mkdir(appData, { recursive: true });
  if (seedMiB > 0) {
    const seeded = await writeSeedData({ dir: join(appData, "attachments"), totalBytes: seedMiB * 1024 ** 2 });
    say(`seeded the app's data dir with ${seeded.files} files, ${seedMiB} MiB, so archiving takes a moment`);
  }
  const cleanups: Array<() => Promise<unknown>> = [];
  try {
    const agent = await startAgent({
      dir: join(scratch, "agent"),
      guests: [{ id: "demo", driver: "dir", snapshot: "copy", volumes: [{ name: "data", path: appData }] }],
      config: {
        quiesce: { timeoutMs: 15_000, policy: "fail" },
        leaseTtlMs: 5_000,
        // The app-level check the agent runs on an ephemeral replica of each new restore point.
        verify: { checks: [{ guest: "demo", stack: "app", check: { type: "command", argv: [process.execPath, ENTRY_POINTS.demoVerifyCheck] } }] },
      },
      echo: verbose,
    });
    cleanups.push(() => agent.stop());
    say(`agent listening on ${agent.address} (TLS, CA ${agent.fingerprint}) and on ${agent.socketPath} (guest demo: dir driver, copy of ${appData})`);
    const credentials = await agent.credentialsFor("demo", "app");
    say("$ lull-agent token create --guest demo --stack app   (the controller's token; it pins the fingerprint above)");

    const started = await appCtl("start", appData);
    if (started.code !== 0) throw new Error(`app-ctl start failed: ${started.text}`);
    cleanups.push(() => appCtl("stop", appData));
    say(started.text);

    const controller = await startController({
      dir: join(scratch, "controller"),
      guestId: "demo",
      stack: "app",
      agent: credentials,
      resume: "early",
      driver: appCtlDriver(appData),
      resumeDeadlineMs: 60_000,
      pollIntervalMs: 500,
      leaseTtlMs: 5_000,
      echo: verbose,
    });
    cleanups.push(() => controller.stop());
    say("controller registered stack app (resume: early)");
    await sleep(300); // a few more records before the backup

    say(`$ lullctl --socket ${agent.socketPath} backup demo --wait`);
    const lullctlStart = Date.now();
    const exitCode = await runLullctl(["--socket", agent.socketPath, "backup", "demo", "--wait"]);
    const lullctlMs = Date.now() - lullctlStart;
    const job: Job | undefined = (await agent.client().listJobs("demo"))[0];
    if (!job) throw new Error("the agent has no job for guest demo");
    const resumedLine = await controller.proc.waitForLog((l) => l.msg === "stack resumed" && l.jobId === job.id, 15_000);
    const earlyLine = controller.proc.logs.find((l) => l.msg === "snapshotted — resuming app early" && l.jobId === job.id);
    const resumeBegan = typeof earlyLine?.at === "string" ? Date.parse(earlyLine.at) : NaN;
    const finishedAt = job.finishedAt?.getTime() ?? NaN;
    await controller.proc.waitForLog((l) => l.msg === "backup done" && l.jobId === job.id, 15_000);
    const resumed = readResumedLog(resumedLine);
    await sleep(200); // the resumed app writes a few records more

    say(
      `downtime of stack app: ${resumed.downtimeMs} ms (stop ${resumed.stopMs} ms + start ${resumed.startMs} ms, ` +
        `resumed ${resumed.early ? "early, at snapshotted" : "at the end"})`,
    );
    say(`whole backup: ${job.totalMs} ms (lullctl ran ${lullctlMs} ms); the app was down ${((resumed.downtimeMs / Math.max(1, job.totalMs)) * 100).toFixed(1)} % of it`);

    const status = await appCtl("status", appData);
    const checks: Check[] = [
      { name: "lullctl backup --wait exited 0", ok: exitCode === 0, detail: `exit code ${exitCode}` },
      { name: "the job is done", ok: job.phase === Phase.PHASE_DONE, detail: `phase ${phaseName(job.phase)}${job.errorCode ? `, ${job.errorCode}: ${job.errorMessage}` : ""}` },
      {
        name: "the app was resumed early, at snapshotted, before the archive was finished",
        ok: resumed.early && resumeBegan < finishedAt,
        detail: `controller began the restart ${finishedAt - resumeBegan} ms before the job ended (early=${resumed.early})`,
      },
      { name: "the app runs again", ok: status.code === 0, detail: status.text },
    ];
    if (job.phase === Phase.PHASE_DONE && job.archivePath) {
      // The product's own restore: hash, manifest and every member checked before a byte is written.
      const point = `b-${job.id.slice(2)}`;
      const restoreDir = join(scratch, "restore");
      say(`$ lullctl --socket ${agent.socketPath} restore demo ${point} --to ${restoreDir} --wait`);
      const restoredExit = await runLullctl(["--socket", agent.socketPath, "restore", "demo", point, "--to", restoreDir, "--wait"]);
      checks.push({ name: "lullctl restore --to exited 0 (the archive's hash, manifest and members checked)", ok: restoredExit === 0, detail: `exit code ${restoredExit}` });
      checks.push(...checkRestoredRecords(readRecords(recordsFile(join(restoreDir, "data"))), readRecords(recordsFile(appData)), job.snapshotAt));
    } else {
      checks.push({ name: "the backup can be restored", ok: false, detail: "no archive" });
    }
    if (job.phase === Phase.PHASE_DONE) {
      const point = `b-${job.id.slice(2)}`;
      say(`$ lullctl --socket ${agent.socketPath} verify demo ${point} --wait   (restores the point on a scratch replica, runs the app's check, tears it down)`);
      const verified = await runLullctl(["--socket", agent.socketPath, "verify", "demo", point, "--wait"]);
      say(`$ lullctl --socket ${agent.socketPath} verifications demo`);
      await runLullctl(["--socket", agent.socketPath, "verifications", "demo"]);
      checks.push({ name: "the restore point passes the app's check on an ephemeral replica", ok: verified === 0, detail: `lullctl verify exited ${verified}` });
    }
    return printChecks(checks);
  } finally {
    for (const cleanup of cleanups.reverse()) {
      await cleanup().catch((err: unknown) => say(`cleanup: ${(err as Error).message}`));
    }
  }
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: { keep: { type: "boolean" }, verbose: { type: "boolean" }, "data-mib": { type: "string", default: "256" } },
    strict: true,
  });
  const seedMiB = Number(values["data-mib"]);
  if (!Number.isInteger(seedMiB) || seedMiB < 0 || seedMiB > 4096) {
    process.stderr.write("demo: --data-mib must be a whole number from 0 to 4096\n");
    return 2;
  }
  const scratch = await makeTempDir("lull-demo-");
  say(`scratch dir: ${scratch}`);
  let ok = false;
  try {
    ok = await runDemo(scratch, values.verbose === true, seedMiB);
  } catch (err) {
    say(`the demo broke: ${(err as Error).message}`);
  }
  if (ok && values.keep !== true) await removeDir(scratch);
  else say(`kept ${scratch} for a look`);
  say(ok ? "all checks passed" : "FAILED");
  return ok ? 0 : 1;
}

process.exitCode = await main();
