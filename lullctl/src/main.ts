#!/usr/bin/env node
// lullctl: the operator's command line for lull-agent. See run.ts and args.ts (USAGE).
import { runLullctl } from "./run.js";
import { streamOutput } from "./output.js";
import { parseInvocation } from "./args.js";

const interrupt = new AbortController();
let interrupts = 0;
process.on("SIGINT", () => {
  interrupts++;
  if (interrupts > 1) process.exit(130);
  interrupt.abort(new Error("interrupted"));
});
// `lullctl events --follow | head`: a closed pipe ends lullctl quietly.
process.stdout.on("error", (err: NodeJS.ErrnoException) => {
  if (err.code === "EPIPE") process.exit(0);
  throw err;
});

const argv = process.argv.slice(2);
const code = await runLullctl({
  argv,
  env: process.env,
  out: streamOutput(process.stdout, process.stderr),
  signal: interrupt.signal,
});
process.exitCode = code;
// --cluster only: every channel is closed by now, but grpc-js cannot abort a TCP connect to a node
// that is down — its socket waits for the kernel's SYN timeout (up to minutes). The answer is
// complete, so end once stdout is written. Every other command ends when its handles do, as before.
const cluster = (() => {
  try {
    return parseInvocation(argv).cluster === true;
  } catch {
    return false;
  }
})();
if (cluster) process.stdout.write("", () => process.exit(code));
