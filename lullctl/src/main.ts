#!/usr/bin/env node
// lullctl: the operator's command line for lull-agent. See run.ts and args.ts (USAGE).
import { runLullctl } from "./run.js";
import { streamOutput } from "./output.js";

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

process.exitCode = await runLullctl({
  argv: process.argv.slice(2),
  env: process.env,
  out: streamOutput(process.stdout, process.stderr),
  signal: interrupt.signal,
});
