// The demo app as a stack of the controller's `command` driver (argv arrays, no shell).
import { ENTRY_POINTS, type CommandDriver } from "../support/index.js";

export function appCtlDriver(dataDir: string, timeoutMs = 15_000): CommandDriver & { verifyTimeoutMs: number } {
  const ctl = (verb: string) => [process.execPath, ENTRY_POINTS.demoAppCtl, verb, dataDir];
  return { type: "command", start: ctl("start"), stop: ctl("stop"), status: ctl("status"), timeoutMs, verifyTimeoutMs: 5_000 };
}
