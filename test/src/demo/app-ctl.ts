// Starts, stops and checks the demo app, for the controller's `command` stack driver:
//   node app-ctl.js start  <dataDir>   starts it detached; returns once it has written a record
//   node app-ctl.js stop   <dataDir>   SIGTERM, waits for it to exit
//   node app-ctl.js status <dataDir>   exit 0 when running, 3 when not
// Exit 1 on failure (with a message on stderr), 2 on bad usage. Every wait has a timeout.
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { runningDaemonPid, startDaemon, stopDaemon, type PidDaemon } from "../support/pid-daemon.js";
import { lastRecord, logFile, pidFile, recordsFile } from "./records.js";

const APP = fileURLToPath(new URL("./app.js", import.meta.url));
const START_TIMEOUT_MS = 10_000;
const STOP_TIMEOUT_MS = 10_000;

/** The demo app as a pid-file daemon: it writes its pid file itself once its first record is durable. */
const daemonOf = (dataDir: string): PidDaemon => ({
  argv: [process.execPath, APP, dataDir],
  pidFile: pidFile(dataDir),
  logFile: logFile(dataDir),
  cmdlineIncludes: [APP],
});

const runningPid = (dataDir: string) => runningDaemonPid(daemonOf(dataDir));
const lastId = (dataDir: string) => lastRecord(recordsFile(dataDir))?.id ?? "?";

async function start(dataDir: string): Promise<number> {
  if (!existsSync(dataDir)) throw new Error(`data dir ${dataDir} does not exist`);
  const { pid, alreadyRunning } = await startDaemon(daemonOf(dataDir), START_TIMEOUT_MS).catch((err: unknown) => {
    throw new Error(`app ${(err as Error).message}`);
  });
  process.stdout.write(alreadyRunning ? `app already running (pid ${pid})\n` : `app started (pid ${pid}, record #${lastId(dataDir)})\n`);
  return 0;
}

async function stop(dataDir: string): Promise<number> {
  const pid = await stopDaemon(daemonOf(dataDir), STOP_TIMEOUT_MS);
  process.stdout.write(pid === undefined ? "app not running\n" : `app stopped (pid ${pid}, last record #${lastId(dataDir)})\n`);
  return 0;
}

function status(dataDir: string): number {
  const pid = runningPid(dataDir);
  if (pid === undefined) {
    process.stdout.write("app stopped\n");
    return 3;
  }
  process.stdout.write(`app running (pid ${pid}, record #${lastId(dataDir)})\n`);
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
