// The demo app's start/stop/status script behind a ledger, for the controller's `command` driver:
//   node counted-stack-ctl.js <ledgerFile> <stopDelayMs> start|stop|status <dataDir>
// Every `start` and `stop` invocation appends a `begin` line before it acts and an `end` line
// (with the exit code) after, as JSON, to <ledgerFile> (O_APPEND: whole lines even with
// concurrent writers), so a test can count how often a controller stopped or started its stack,
// even across controller crashes. `stopDelayMs` > 0 makes a stop slow (sleeps before stopping).
// `status` is passed through without a ledger line (the controller polls it). The app-ctl script
// runs in this process (imported with its argv), so an invocation costs one Node start-up.
import { appendFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

const APP_CTL = new URL("../demo/app-ctl.js", import.meta.url);

function note(ledger: string, entry: Record<string, unknown>): void {
  // spawnedAt: when this process started (before Node's own start-up), i.e. when the driver ran it.
  appendFileSync(ledger, `${JSON.stringify({ ...entry, at: Date.now(), spawnedAt: Math.round(performance.timeOrigin), pid: process.pid })}\n`);
}

async function main(): Promise<void> {
  const [ledger, delayArg, verb, dataDir] = process.argv.slice(2);
  const stopDelayMs = Number(delayArg);
  if (!ledger || !dataDir || !Number.isInteger(stopDelayMs) || stopDelayMs < 0 || !["start", "stop", "status"].includes(verb ?? "")) {
    process.stderr.write("usage: counted-stack-ctl.js <ledgerFile> <stopDelayMs> start|stop|status <dataDir>\n");
    process.exitCode = 2;
    return;
  }
  const counted = verb === "start" || verb === "stop";
  if (counted) note(ledger, { verb, event: "begin" });
  if (verb === "stop" && stopDelayMs > 0) await new Promise<void>((r) => setTimeout(r, stopDelayMs));
  process.argv = [process.argv[0] as string, fileURLToPath(APP_CTL), verb as string, dataDir];
  await import(APP_CTL.href); // sets process.exitCode
  if (counted) note(ledger, { verb, event: "end", code: process.exitCode ?? 0 });
}

await main();
