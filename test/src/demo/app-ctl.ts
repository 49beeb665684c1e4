// Starts, stops and checks the demo app, for the controller's `command` stack driver:
//   node app-ctl.js start  <dataDir>   starts it detached; returns once it has written a record
//   node app-ctl.js stop   <dataDir>   SIGTERM, waits for it to exit
//   node app-ctl.js status <dataDir>   exit 0 when running, 3 when not
// Exit 1 on failure (with a message on stderr), 2 on bad usage. Every wait has a timeout.
import { spawn } from "node:child_process";
import { closeSync, existsSync, openSync, readFileSync, rmSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { lastRecord, logFile, pidFile, recordsFile } from "./records.js";

const APP = fileURLToPath(new URL("./app.js", import.meta.url));
const START_TIMEOUT_MS = 10_000;
const STOP_TIMEOUT_MS = 10_000;
const POLL_MS = 5;

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function readPid(dataDir: string): number | undefined {
  try {
    const pid = Number(readFileSync(pidFile(dataDir), "utf8").trim());
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** The pid is a live (not zombie) process running our app. */
function isAppProcess(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
    if (state === "Z" || state === "X") return false;
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").includes(APP);
  } catch {
    return false;
  }
}

function runningPid(dataDir: string): number | undefined {
  const pid = readPid(dataDir);
  return pid !== undefined && isAppProcess(pid) ? pid : undefined;
}

async function start(dataDir: string): Promise<number> {
  if (!existsSync(dataDir)) throw new Error(`data dir ${dataDir} does not exist`);
  const running = runningPid(dataDir);
  if (running !== undefined) {
    process.stdout.write(`app already running (pid ${running})\n`);
    return 0;
  }
  rmSync(pidFile(dataDir), { force: true }); // stale, from a crash
  const log = openSync(logFile(dataDir), "a");
  const child = spawn(process.execPath, [APP, dataDir], { detached: true, stdio: ["ignore", log, log], shell: false });
  closeSync(log);
  let exitCode: number | null | undefined;
  child.on("exit", (code) => (exitCode = code));
  child.unref();
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (exitCode !== undefined) throw new Error(`app exited (${exitCode}) while starting; see ${logFile(dataDir)}`);
    if (readPid(dataDir) === child.pid) {
      process.stdout.write(`app started (pid ${child.pid}, record #${lastRecord(recordsFile(dataDir))?.id ?? "?"})\n`);
      return 0;
    }
    await sleep(POLL_MS);
  }
  throw new Error(`app did not write its first record within ${START_TIMEOUT_MS} ms; see ${logFile(dataDir)}`);
}

async function stop(dataDir: string): Promise<number> {
  const pid = runningPid(dataDir);
  if (pid === undefined) {
    rmSync(pidFile(dataDir), { force: true });
    process.stdout.write("app not running\n");
    return 0;
  }
  process.kill(pid, "SIGTERM");
  const deadline = Date.now() + STOP_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (!isAppProcess(pid)) {
      process.stdout.write(`app stopped (pid ${pid}, last record #${lastRecord(recordsFile(dataDir))?.id ?? "?"})\n`);
      return 0;
    }
    await sleep(POLL_MS);
  }
  throw new Error(`app (pid ${pid}) did not exit within ${STOP_TIMEOUT_MS} ms of SIGTERM`);
}

function status(dataDir: string): number {
  const pid = runningPid(dataDir);
  if (pid === undefined) {
    process.stdout.write("app stopped\n");
    return 3;
  }
  process.stdout.write(`app running (pid ${pid}, record #${lastRecord(recordsFile(dataDir))?.id ?? "?"})\n`);
  return 0;
}

async function main(): Promise<number> {
  const [command, dataDir] = process.argv.slice(2);
  if (!dataDir || !["start", "stop", "status"].includes(command ?? "")) {
    process.stderr.write("usage: app-ctl.js start|stop|status <dataDir>\n");
    return 2;
  }
  try {
    if (command === "start") return await start(dataDir);
    if (command === "stop") return await stop(dataDir);
    return status(dataDir);
  } catch (err) {
    process.stderr.write(`app-ctl ${command}: ${(err as Error).message}\n`);
    return 1;
  }
}

process.exitCode = await main();
