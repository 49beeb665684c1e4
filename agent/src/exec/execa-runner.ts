// The real CommandRunner: execa 9 with argv arrays, never a shell. A command that exits
// non-zero (when `reject` is on), times out or cannot start throws LULL_E_COMMAND_FAILED
// naming its argv and the last lines of its stderr; an aborted signal throws LULL_E_CANCELLED.
import { execa, type Options as ExecaOptions, type Result as ExecaResult } from "execa";
import { LullError, type Logger } from "@lull/shared";
import type { CommandOptions, CommandResult, CommandRunner } from "./command-runner.js";

/** How many trailing stderr lines an error message quotes. */
export const STDERR_TAIL_LINES = 5;
/** After SIGTERM (abort or timeout), how long a child gets before SIGKILL. */
export const FORCE_KILL_AFTER_MS = 5_000;
/** Output kept per stream; a command printing more than this fails rather than filling memory. */
export const MAX_OUTPUT_BYTES = 64 * 1024 * 1024;

/** `btrfs subvolume show '/srv/my data'`: argv as a reader would type it (for messages and logs only). */
export function formatArgv(file: string, args: readonly string[]): string {
  return [file, ...args].map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replaceAll("'", `'\\''`)}'`)).join(" ");
}

/** The last `count` non-empty lines of a command's output, joined with " | ". */
export function tailLines(text: string, count = STDERR_TAIL_LINES): string {
  return text
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l.length > 0)
    .slice(-count)
    .join(" | ");
}

function execaOptions(options: CommandOptions): ExecaOptions {
  return {
    shell: false,
    reject: false,
    stripFinalNewline: false,
    maxBuffer: MAX_OUTPUT_BYTES,
    forceKillAfterDelay: FORCE_KILL_AFTER_MS,
    ...(options.signal !== undefined ? { cancelSignal: options.signal } : {}),
    ...(options.timeoutMs !== undefined ? { timeout: options.timeoutMs } : {}),
    ...(options.cwd !== undefined ? { cwd: options.cwd } : {}),
    ...(options.env !== undefined ? { env: options.env } : {}),
    ...(options.extendEnv !== undefined ? { extendEnv: options.extendEnv } : {}),
    ...(options.input !== undefined ? { input: options.input } : { stdin: "ignore" as const }),
  };
}

function asText(value: unknown): string {
  if (typeof value === "string") return value;
  if (value === undefined || value === null) return "";
  return String(value);
}

function failure(argv: string, result: ExecaResult, options: CommandOptions): LullError | undefined {
  const stderr = tailLines(asText(result.stderr));
  const detail = stderr.length > 0 ? `: ${stderr}` : "";
  if (result.isCanceled || (result.failed && options.signal?.aborted === true)) {
    return new LullError("LULL_E_CANCELLED", `${argv} was cancelled`, { cause: result });
  }
  if (result.timedOut) {
    return new LullError("LULL_E_COMMAND_FAILED", `${argv} timed out after ${options.timeoutMs}ms${detail}`, {
      cause: result,
    });
  }
  if (result.exitCode === undefined) {
    // Could not start (ENOENT, EACCES), killed by a signal, or output too large: never a plain exit code.
    const why = result.signal !== undefined ? `was killed by ${result.signal}` : `failed: ${result.shortMessage}`;
    return new LullError("LULL_E_COMMAND_FAILED", `${argv} ${why}${detail}`, { cause: result });
  }
  if (result.exitCode !== 0 && options.reject !== false) {
    return new LullError("LULL_E_COMMAND_FAILED", `${argv} exited with code ${result.exitCode}${detail}`, {
      cause: result,
    });
  }
  return undefined;
}

export function createExecaRunner(options: { log?: Logger } = {}): CommandRunner {
  const log = options.log;
  return {
    async run(file: string, args: readonly string[], commandOptions: CommandOptions = {}): Promise<CommandResult> {
      const argv = formatArgv(file, args);
      if (commandOptions.signal?.aborted) {
        throw new LullError("LULL_E_CANCELLED", `${argv} was cancelled before it started`);
      }
      const started = Date.now();
      const result = await execa(file, [...args], execaOptions(commandOptions));
      const error = failure(argv, result, commandOptions);
      log?.debug({ argv, exitCode: result.exitCode, ms: Date.now() - started, failed: error?.code }, "command ran");
      if (error) throw error;
      return { exitCode: result.exitCode ?? 0, stdout: asText(result.stdout), stderr: asText(result.stderr) };
    },
  };
}
