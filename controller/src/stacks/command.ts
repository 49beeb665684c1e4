// Stack driver that runs user commands: `stop`, `start`, and `status`, optionally `pause` and
// `unpause` (their exit status is the only check of a pause: `status` cannot tell paused from
// running). Argv arrays, never a shell.
//
// The status contract, as LSB init scripts and `pg_ctl status` have it: exit 0 = running, exit 3 =
// stopped. Any other exit (pg_ctl run as root exits 1, a typo, a crash) or a command that cannot
// run is an unknown status: an error carrying the command's stderr, never "stopped" — a database
// whose status errs must not be taken for one its operator stopped.
import { constants, accessSync, statSync } from "node:fs";
import { delimiter, isAbsolute, join } from "node:path";
import { LullError, createExecaRunner, formatArgv, splitArgv, tailLines, type CommandRunner } from "@lull/shared";
import type { CommandDriverConfig } from "../config.js";
import type { StackDriver, StackStatus } from "./driver.js";
import { runArgv, runChecked } from "./checked-command.js";

/** `status` exit codes (LSB init scripts, `pg_ctl status`). */
export const STATUS_RUNNING = 0;
export const STATUS_STOPPED = 3;

type CommandName = "start" | "stop" | "status" | "pause" | "unpause";

/** A hint for a failure whose cause is known to bite new users. */
function hintFor(output: string): string {
  if (/cannot be run as root/i.test(output)) {
    return " (pg_ctl refuses to run as root: run it as the cluster's owner, e.g. [\"runuser\", \"-u\", \"postgres\", \"--\", \"pg_ctl\", \"-D\", \"<data dir>\", \"status\"])";
  }
  return "";
}

/** Why `file` (argv[0]) cannot be executed, or undefined when it can: an absolute path, a relative one, or a name on PATH. */
export function whyNotExecutable(file: string, path = process.env.PATH ?? ""): string | undefined {
  const executable = (candidate: string): boolean => {
    try {
      accessSync(candidate, constants.X_OK);
      return statSync(candidate).isFile();
    } catch {
      return false;
    }
  };
  if (file.includes("/")) {
    try {
      statSync(file);
    } catch {
      return `${file} does not exist`;
    }
    return executable(file) ? undefined : `${file} is not an executable file`;
  }
  const dirs = path.split(delimiter).filter((d) => d !== "" && isAbsolute(d));
  return dirs.some((d) => executable(join(d, file))) ? undefined : `${file} is not found on PATH (${dirs.join(delimiter) || "empty"})`;
}

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
  const status = async (signal?: AbortSignal): Promise<StackStatus> => {
    const outcome = await runArgv(runner, config.status, { timeoutMs: config.timeoutMs, signal });
    if (outcome.exitCode === STATUS_RUNNING) return "running";
    if (outcome.exitCode === STATUS_STOPPED) return "stopped";
    const output = tailLines(outcome.stderr) || tailLines(outcome.stdout);
    throw new LullError(
      "LULL_E_COMMAND_FAILED",
      `status command ${formatArgv(...splitArgv(config.status))} exited ${outcome.exitCode}: the status is unknown ` +
        `(it must exit ${STATUS_RUNNING} for running or ${STATUS_STOPPED} for stopped)${output ? `: ${output}` : ""}${hintFor(output)}`,
    );
  };

  const missing = (): string[] => {
    const problems: string[] = [];
    const commands: Array<[CommandName, readonly string[] | undefined]> = [
      ["start", config.start],
      ["stop", config.stop],
      ["status", config.status],
      ["pause", pause],
      ["unpause", unpause],
    ];
    for (const [name, argv] of commands) {
      const file = argv?.[0];
      if (file === undefined) continue;
      const why = whyNotExecutable(file);
      if (why !== undefined) problems.push(`driver.${name} cannot run: ${why}`);
    }
    return problems;
  };

  return {
    kind: "command",
    verifyTimeoutMs: config.verifyTimeoutMs,
    stop: (signal) => run(config.stop, "LULL_E_STACK_STOP_FAILED", signal),
    start: (signal) => run(config.start, "LULL_E_STACK_START_FAILED", signal),
    status,
    reportsPaused: false,
    pause: pause === undefined ? undefined : (signal) => run(pause, "LULL_E_STACK_STOP_FAILED", signal),
    unpause: unpause === undefined ? undefined : (signal) => run(unpause, "LULL_E_STACK_START_FAILED", signal),
    missing,
    async preflight(signal) {
      const problems = missing();
      if (!problems.some((p) => p.startsWith("driver.status"))) {
        try {
          await status(signal);
        } catch (err) {
          if (signal?.aborted) throw signal.reason;
          problems.push(`driver.status cannot tell whether the stack runs: ${(err as Error).message}`);
        }
      }
      return problems;
    },
  };
}
