// Starts, stops and checks one writer of the isolation test, for the controller's `command` driver:
//   node writer-ctl.js start       <kind> <dataDir> <runDir> [intervalMs]  detached; returns after the first ack
//   node writer-ctl.js stop        <kind> <dataDir> <runDir>               SIGTERM, waits for the exit
//   node writer-ctl.js status      <kind> <dataDir> <runDir>               exit 0 when running, 3 when not
//   node writer-ctl.js refuse-stop <kind> <dataDir> <runDir>               a stack whose stop fails: exit 1, keeps running
// Exit 1 on failure (message on stderr), 2 on bad usage.
import { fileURLToPath } from "node:url";
import { runningDaemonPid, startDaemon, stopDaemon, type PidDaemon } from "../support/pid-daemon.js";
import { isServiceKind, readLedger, runFiles } from "./ledger.js";

const WRITER = fileURLToPath(new URL("./writer.js", import.meta.url));
const START_TIMEOUT_MS = 10_000;
const STOP_TIMEOUT_MS = 10_000;
const VERBS = ["start", "stop", "status", "refuse-stop"] as const;
type Verb = (typeof VERBS)[number];

function lastAcked(runDir: string): string {
  return `#${readLedger(runFiles(runDir).ledger).at(-1)?.id ?? "-"}`;
}

async function run(verb: Verb, kind: string, dataDir: string, runDir: string, intervalMs: string | undefined): Promise<number> {
  const files = runFiles(runDir);
  const daemon: PidDaemon = {
    argv: [process.execPath, WRITER, kind, dataDir, runDir, ...(intervalMs !== undefined ? [intervalMs] : [])],
    pidFile: files.pid,
    logFile: files.log,
    cmdlineIncludes: [WRITER, runDir],
  };
  switch (verb) {
    case "start": {
      const { pid, alreadyRunning } = await startDaemon(daemon, START_TIMEOUT_MS);
      process.stdout.write(`${kind} writer ${alreadyRunning ? "already running" : "started"} (pid ${pid}, last ack ${lastAcked(runDir)})\n`);
      return 0;
    }
    case "stop": {
      const pid = await stopDaemon(daemon, STOP_TIMEOUT_MS);
      process.stdout.write(pid === undefined ? `${kind} writer not running\n` : `${kind} writer stopped (pid ${pid}, last ack ${lastAcked(runDir)})\n`);
      return 0;
    }
    case "status": {
      const pid = runningDaemonPid(daemon);
      process.stdout.write(pid === undefined ? `${kind} writer stopped\n` : `${kind} writer running (pid ${pid})\n`);
      return pid === undefined ? 3 : 0;
    }
    case "refuse-stop":
      process.stderr.write(`${kind} writer: refusing to stop (this stack cannot be quiesced); it keeps writing\n`);
      return 1;
  }
}

async function main(): Promise<number> {
  const [verb, kind, dataDir, runDir, intervalMs] = process.argv.slice(2);
  if (!VERBS.includes(verb as Verb) || !kind || !isServiceKind(kind) || !dataDir || !runDir) {
    process.stderr.write(`usage: writer-ctl.js ${VERBS.join("|")} <sqlite|log|objects> <dataDir> <runDir> [intervalMs]\n`);
    return 2;
  }
  try {
    return await run(verb as Verb, kind, dataDir, runDir, intervalMs);
  } catch (err) {
    process.stderr.write(`writer-ctl ${verb} ${kind}: ${(err as Error).message}\n`);
    return 1;
  }
}

process.exitCode = await main();
