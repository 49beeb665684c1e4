// A detached background process tracked by a pid file, for the `start|stop|status` scripts that
// the controller's `command` stack driver runs (argv arrays, no shell). The daemon writes its own
// pid file (temp + rename) once it is ready; `start` returns then. Every wait has a timeout.
import { spawn } from "node:child_process";
import { closeSync, openSync, readFileSync, rmSync } from "node:fs";

export interface PidDaemon {
  /** argv of the daemon: `[executable, ...args]`. */
  argv: readonly string[];
  /** Written by the daemon itself once it is ready; removed by it on a clean exit. */
  pidFile: string;
  /** stdout and stderr of the daemon are appended here. */
  logFile: string;
  /** Arguments that the daemon's /proc/<pid>/cmdline must all contain (tells a reused pid apart). */
  cmdlineIncludes: readonly string[];
}

const POLL_MS = 5;
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

function readPid(pidFile: string): number | undefined {
  try {
    const pid = Number(readFileSync(pidFile, "utf8").trim());
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** The pid is a live (not zombie) process whose command line contains every one of `args`. */
function isDaemonProcess(pid: number, args: readonly string[]): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
    if (state === "Z" || state === "X") return false;
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
    return args.every((a) => cmdline.includes(a));
  } catch {
    return false;
  }
}

/** The pid of the running daemon, or undefined when it does not run. */
export function runningDaemonPid(daemon: PidDaemon): number | undefined {
  const pid = readPid(daemon.pidFile);
  return pid !== undefined && isDaemonProcess(pid, daemon.cmdlineIncludes) ? pid : undefined;
}

/**
 * Starts the daemon detached unless it already runs; resolves with its pid once it has written
 * its pid file. Rejects when it exits first or does not get ready within `timeoutMs`.
 */
export async function startDaemon(daemon: PidDaemon, timeoutMs: number): Promise<{ pid: number; alreadyRunning: boolean }> {
  const running = runningDaemonPid(daemon);
  if (running !== undefined) return { pid: running, alreadyRunning: true };
  rmSync(daemon.pidFile, { force: true }); // stale, from a crash
  const [file, ...args] = daemon.argv;
  if (file === undefined) throw new Error("the daemon's argv is empty");
  const log = openSync(daemon.logFile, "a");
  const child = spawn(file, args, { detached: true, stdio: ["ignore", log, log], shell: false });
  closeSync(log);
  let exitCode: number | null | undefined;
  child.on("exit", (code) => (exitCode = code));
  child.unref();
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (exitCode !== undefined) throw new Error(`exited (${exitCode}) while starting; see ${daemon.logFile}`);
    if (child.pid !== undefined && readPid(daemon.pidFile) === child.pid) return { pid: child.pid, alreadyRunning: false };
    await sleep(POLL_MS);
  }
  throw new Error(`not ready within ${timeoutMs} ms; see ${daemon.logFile}`);
}

/** SIGTERM and wait until the process is gone; resolves with its pid (undefined: was not running). */
export async function stopDaemon(daemon: PidDaemon, timeoutMs: number): Promise<number | undefined> {
  const pid = runningDaemonPid(daemon);
  if (pid === undefined) {
    rmSync(daemon.pidFile, { force: true });
    return undefined;
  }
  process.kill(pid, "SIGTERM");
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!isDaemonProcess(pid, daemon.cmdlineIncludes)) return pid;
    await sleep(POLL_MS);
  }
  throw new Error(`pid ${pid} did not exit within ${timeoutMs} ms of SIGTERM`);
}
