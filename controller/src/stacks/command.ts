// Stack driver that runs user commands: `stop`, `start`, and `status` (exit 0 = running,
// any other exit = not running), optionally `pause` and `unpause` (their exit status is the only
// check of a pause: `status` cannot tell paused from running). Argv arrays, never a shell.
import { createExecaRunner, type CommandRunner } from "@lull/shared";
import type { CommandDriverConfig } from "../config.js";
import type { StackDriver, StackStatus } from "./driver.js";
import { runArgv, runChecked } from "./checked-command.js";

export function createCommandDriver(
  config: Pick<CommandDriverConfig, "start" | "stop" | "status" | "timeoutMs" | "verifyTimeoutMs"> & Partial<Pick<CommandDriverConfig, "pause" | "unpause">>,
  runner: CommandRunner = createExecaRunner(),
): StackDriver {
  const { pause, unpause } = config;
  const run = async (
    argv: readonly string[],
    code: "LULL_E_STACK_STOP_FAILED" | "LULL_E_STACK_START_FAILED",
    signal?: AbortSignal,
  ): Promise<void> => {
    await runChecked(runner, argv, { timeoutMs: config.timeoutMs, signal }, code);
  };

  return {
    kind: "command",
    verifyTimeoutMs: config.verifyTimeoutMs,
    stop: (signal) => run(config.stop, "LULL_E_STACK_STOP_FAILED", signal),
    start: (signal) => run(config.start, "LULL_E_STACK_START_FAILED", signal),
    async status(signal): Promise<StackStatus> {
      const outcome = await runArgv(runner, config.status, { timeoutMs: config.timeoutMs, signal });
      return outcome.exitCode === 0 ? "running" : "stopped";
    },
    reportsPaused: false,
    pause: pause === undefined ? undefined : (signal) => run(pause, "LULL_E_STACK_STOP_FAILED", signal),
    unpause: unpause === undefined ? undefined : (signal) => run(unpause, "LULL_E_STACK_START_FAILED", signal),
  };
}
