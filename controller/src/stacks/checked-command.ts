// How the controller runs a configured argv (a stack driver's stop/start/status, a quiesce
// command step) on the shared CommandRunner: an explicit timeout, cancellation through an
// AbortSignal, and a non-zero exit turned into the caller's error code with the command's last
// output lines. A run that failed before exiting (cannot start, timeout, cancelled) is thrown as
// the caller's code too (a stop that did not run is a failed stop) — unless that code is
// LULL_E_COMMAND_FAILED: then the runner's own error passes through, so a cancel stays LULL_E_CANCELLED.
import { LullError, formatArgv, splitArgv, tailLines, type CommandResult, type CommandRunner, type ErrorCode } from "@lull/shared";

/** After SIGTERM (timeout or abort), how long a stack or step command gets before SIGKILL. */
export const COMMAND_STOP_GRACE_MS = 2_000;

export interface ArgvRunOptions {
  timeoutMs: number;
  signal?: AbortSignal | undefined;
  /** Added to the controller's environment (quiesce steps get LULL_JOB_ID, LULL_STACK, LULL_HOOK). */
  env?: Readonly<Record<string, string>> | undefined;
}

/** Runs `argv`; a non-zero exit is returned for the caller to interpret. */
export function runArgv(runner: CommandRunner, argv: readonly string[], options: ArgvRunOptions): Promise<CommandResult> {
  const [file, args] = splitArgv(argv);
  return runner.run(file, args, { ...options, reject: false, stopGraceMs: COMMAND_STOP_GRACE_MS });
}

/** Runs `argv` and requires exit 0, else throws `code` with its last stderr (or stdout) lines; resolves with stdout. */
export async function runChecked(runner: CommandRunner, argv: readonly string[], options: ArgvRunOptions, code: ErrorCode): Promise<string> {
  let outcome: CommandResult;
  try {
    outcome = await runArgv(runner, argv, options);
  } catch (err) {
    if (code === "LULL_E_COMMAND_FAILED") throw err;
    throw new LullError(code, (err as Error).message, { cause: err });
  }
  if (outcome.exitCode !== 0) {
    const output = tailLines(outcome.stderr) || tailLines(outcome.stdout);
    throw new LullError(code, `${formatArgv(...splitArgv(argv))} exited ${outcome.exitCode}${output ? `: ${output}` : ""}`);
  }
  return outcome.stdout;
}
