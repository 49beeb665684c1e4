#!/usr/bin/env node
// lull-controller [--config FILE] [--log-level LEVEL]
// The sidecar of one app stack. Exit codes: 0 after a clean shutdown, 2 on a bad configuration or
// usage, 1 on an unexpected error. SIGTERM/SIGINT: shut down (the stack runs again, the stack is
// unregistered); a second signal exits at once.
import { parseArgs } from "node:util";
import { LullError, asLullError, createLogger, systemClock, type Logger } from "@lull/shared";
import { loadControllerConfig, type ControllerConfig } from "./config.js";
import { Controller } from "./controller.js";
import { createFileMarkerStore } from "./marker-store.js";
import { Quiescer } from "./quiesce/quiescer.js";
import { createStackDriver } from "./stacks/index.js";

const USAGE = "usage: lull-controller [--config FILE] [--log-level fatal|error|warn|info|debug|trace|silent]";

function parseFlags(): { config?: string | undefined; logLevel?: string | undefined } {
  try {
    const { values } = parseArgs({
      options: {
        config: { type: "string", short: "c" },
        "log-level": { type: "string" },
        help: { type: "boolean", short: "h" },
      },
      strict: true,
      allowPositionals: false,
    });
    if (values.help) {
      process.stdout.write(`${USAGE}\n`);
      process.exit(0);
    }
    return { config: values.config, logLevel: values["log-level"] };
  } catch (err) {
    process.stderr.write(`lull-controller: ${(err as Error).message}\n${USAGE}\n`);
    process.exit(2);
  }
}

function loadOrExit(): Readonly<ControllerConfig> {
  try {
    return loadControllerConfig(parseFlags(), process.env);
  } catch (err) {
    process.stderr.write(`lull-controller: ${asLullError(err).code}: ${asLullError(err).message}\n`);
    process.exit(2);
  }
}

/**
 * A failpoint emulates a crash at that point: the process freezes; signals get their default action
 * (death). The handlers go before the failpoint is announced: a SIGTERM that came between the
 * announcement and their removal would wait for an event loop that never runs again.
 */
async function freezeProcess(announce: () => void): Promise<void> {
  for (const sig of ["SIGTERM", "SIGINT"] as const) process.removeAllListeners(sig);
  announce();
  const cell = new Int32Array(new SharedArrayBuffer(4));
  for (;;) Atomics.wait(cell, 0, 0);
}

/**
 * The controller cannot run (e.g. its token file is missing), but a marker left by a crash means the
 * stack may be down: release it the way its strategy holds it (start / unpause) and run the post
 * steps, as a restarted controller would, then clear the marker. The stack is never left down.
 */
async function resumeIfMarked(config: Readonly<ControllerConfig>, log: Logger): Promise<void> {
  const markers = createFileMarkerStore(config.markerDir, config.stack);
  try {
    const read = markers.read();
    if (read.kind === "none") return;
    log.warn({ stack: config.stack }, "marker found at start — starting the stack before exiting");
    const driver = createStackDriver(config.driver);
    const quiescer = new Quiescer({ config: config.quiesce, driver, stack: config.stack, clock: systemClock, log });
    const result = await quiescer.resume(read.kind === "present" ? read.marker.jobId : undefined, "restarted");
    if (!result.ok) throw new LullError("LULL_E_STACK_START_FAILED", result.error ?? "the stack did not come up");
    markers.clear();
    log.info({ stack: config.stack, startMs: result.startMs, postStep: result.postStep ?? null }, "stack resumed without the agent");
  } catch (err) {
    log.error({ err: asLullError(err).message, code: asLullError(err).code }, "resuming the stack failed");
  }
}

async function main(): Promise<void> {
  const config = loadOrExit();
  const log: Logger = createLogger({ name: "lull-controller", level: config.logLevel });
  const shutdown = new AbortController();
  let signals = 0;
  const onSignal = (sig: NodeJS.Signals) => {
    signals += 1;
    if (signals > 1) {
      log.warn({ signal: sig }, "second signal — exiting now");
      process.exit(130);
    }
    log.info({ signal: sig }, "signal received — shutting down");
    shutdown.abort();
  };
  process.on("SIGTERM", onSignal);
  process.on("SIGINT", onSignal);

  let controller: Controller;
  try {
    controller = new Controller({ config, log, freeze: freezeProcess });
  } catch (err) {
    const e = asLullError(err);
    log.fatal({ code: e.code, err: e.message }, "controller cannot start");
    process.stderr.write(`lull-controller: ${e.code}: ${e.message}\n`);
    await resumeIfMarked(config, log);
    process.exit(e.code === "LULL_E_CONFIG_INVALID" ? 2 : 1);
  }
  try {
    await controller.run(shutdown.signal);
  } catch (err) {
    log.fatal({ err: asLullError(err).message, code: asLullError(err).code }, "controller failed");
    process.exit(1);
  }
  process.exit(0);
}

void main();
