// A demo-app stack whose starts and stops are counted: the controller's `command` driver runs
// counted-stack-ctl.js, which notes every start/stop in a ledger file; this module builds that
// driver and reads the ledger back.
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import type { CommandDriver } from "./controller-process.js";
import { ENTRY_POINTS } from "./paths.js";
import { readJsonLines } from "./json-lines.js";

export const COUNTED_STACK_CTL = fileURLToPath(new URL("./counted-stack-ctl.js", import.meta.url));

export interface LedgerEntry {
  verb: "start" | "stop";
  event: "begin" | "end";
  /** When the line was written (ms since the epoch). */
  at: number;
  /** When the invoked process started, before Node's start-up: when the controller ran the command. */
  spawnedAt?: number;
  pid: number;
  code?: number;
}

export interface CountedDriverOptions {
  ledger: string;
  dataDir: string;
  /** A slow stop: sleep this long before stopping (default 0). */
  stopDelayMs?: number;
  timeoutMs?: number;
  verifyTimeoutMs?: number;
}

/** The `command` driver of a counted demo-app stack. `status` runs app-ctl directly (not counted). */
export function countedAppDriver(o: CountedDriverOptions): CommandDriver & { verifyTimeoutMs: number } {
  const counted = (verb: string) => [process.execPath, COUNTED_STACK_CTL, o.ledger, String(o.stopDelayMs ?? 0), verb, o.dataDir];
  return {
    type: "command",
    start: counted("start"),
    stop: counted("stop"),
    status: [process.execPath, ENTRY_POINTS.demoAppCtl, "status", o.dataDir],
    timeoutMs: o.timeoutMs ?? 20_000,
    verifyTimeoutMs: o.verifyTimeoutMs ?? 5_000,
  };
}

/** Every ledger line (a missing ledger is empty; a torn last line is ignored). */
export function readLedger(path: string): LedgerEntry[] {
  return readJsonLines(path) as LedgerEntry[];
}

/** How many times `verb` was invoked (begin lines) at or after `sinceMs`. */
export function countInvocations(entries: readonly LedgerEntry[], verb: "start" | "stop", sinceMs = 0): number {
  return entries.filter((e) => e.verb === verb && e.event === "begin" && e.at >= sinceMs).length;
}

/**
 * How many separate outages the stack was put through at or after `sinceMs`: runs of `stop`
 * invocations not separated by a `start`. A stop repeated while the stack is held down (a
 * controller that crashed mid-stop and stopped again after restarting) is one outage; a stop after
 * a start is a second one.
 */
export function countStopRuns(entries: readonly LedgerEntry[], sinceMs = 0): number {
  let runs = 0;
  let last: "start" | "stop" | undefined;
  for (const e of entries) {
    if (e.event !== "begin" || e.at < sinceMs) continue;
    if (e.verb === "stop" && last !== "stop") runs += 1;
    last = e.verb;
  }
  return runs;
}

export type AppStatus = "running" | "stopped";

/** `app-ctl status <dataDir>`: running (exit 0) or stopped (exit 3); anything else rejects. */
export function appStatus(dataDir: string, timeoutMs = 10_000): Promise<AppStatus> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [ENTRY_POINTS.demoAppCtl, "status", dataDir], { timeout: timeoutMs }, (err, stdout, stderr) => {
      const code = err ? err.code : 0;
      if (code === 0) resolve("running");
      else if (code === 3) resolve("stopped");
      else reject(new Error(`app-ctl status ${dataDir} exited ${String(code)}: ${stdout}${stderr}`));
    });
  });
}

/** `app-ctl start|stop <dataDir>` (uncounted: for set-up and tear-down). */
export function appCtl(verb: "start" | "stop", dataDir: string, timeoutMs = 20_000): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [ENTRY_POINTS.demoAppCtl, verb, dataDir], { timeout: timeoutMs }, (err, stdout, stderr) => {
      if (err) reject(new Error(`app-ctl ${verb} ${dataDir} failed (${String(err.code)}): ${stdout}${stderr}`));
      else resolve();
    });
  });
}
