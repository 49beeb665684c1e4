// The real CommandRunner and Launcher: execa 9 with argv arrays, never a shell. The runner maps a
// command's end to the errors described in ./command-runner.ts; the launcher reports the exit.
import { createInterface } from "node:readline";
import type { Readable } from "node:stream";
import { execa, type Options as ExecaOptions, type Result as ExecaResult } from "execa";
import { LullError } from "../errors.js";
import type { Logger } from "../logger.js";
import { formatArgv, tailLines } from "./argv.js";
import type { CommandOptions, CommandResult, CommandRunner } from "./command-runner.js";
import type { LaunchOptions, Launcher, ProcessExit } from "./launcher.js";

/** After SIGTERM (abort or timeout), how long a child gets before SIGKILL unless told otherwise. */
export const FORCE_KILL_AFTER_MS = 5_000;
/** Output kept per stream; a command printing more than this fails rather than filling memory. */
export const MAX_OUTPUT_BYTES = 64 * 1024 * 1024;

function execaOptions(options: CommandOptions): ExecaOptions {
  return {
    shell: false,
    reject: false,
    stripFinalNewline: false,
    maxBuffer: MAX_OUTPUT_BYTES,
    forceKillAfterDelay: options.stopGraceMs ?? FORCE_KILL_AFTER_MS,
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
    return new LullError("LULL_E_COMMAND_FAILED", `${argv} timed out after ${options.timeoutMs} ms${detail}`, { cause: result });
  }
  if (result.exitCode === undefined) {
    // Could not start (ENOENT, EACCES), killed by a signal, or output too large: never a plain exit code.
    const why = result.signal !== undefined ? `was killed by ${result.signal}` : `failed: ${result.shortMessage}`;
    return new LullError("LULL_E_COMMAND_FAILED", `${argv} ${why}${detail}`, { cause: result });
  }
  if (result.exitCode !== 0 && options.reject !== false) {
    return new LullError("LULL_E_COMMAND_FAILED", `${argv} exited with code ${result.exitCode}${detail}`, { cause: result });
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

/** Resolves once `stream` has delivered everything (as text, and as lines when `onLine` is set). */
function drain(stream: Readable | null, name: "stdout" | "stderr", options: LaunchOptions): Promise<void> {
  return new Promise<void>((resolve) => {
    if (!stream) return resolve();
    stream.setEncoding("utf8");
    // Always read, so a child never blocks on a full pipe nobody listens to.
    stream.on("data", (text: string) => options.onData?.(text, name));
    if (options.onLine === undefined) {
      stream.once("close", () => resolve());
      return;
    }
    const onLine = options.onLine;
    const rl = createInterface({ input: stream, crlfDelay: Infinity });
    rl.on("line", (line) => onLine(line, name));
    rl.on("close", () => resolve());
  });
}

interface Ended {
  exitCode?: number | undefined;
  signal?: string | undefined;
  isCanceled: boolean;
  timedOut: boolean;
  failed: boolean;
  cause?: unknown;
  shortMessage?: string | undefined;
}

function processExit(result: Ended): ProcessExit {
  const exit: ProcessExit = { exitCode: result.exitCode, signal: result.signal, cancelled: result.isCanceled, timedOut: result.timedOut };
  if (result.failed && exit.exitCode === undefined && exit.signal === undefined && !exit.cancelled && !exit.timedOut) {
    exit.startError = (result.cause as Error | undefined)?.message ?? result.shortMessage ?? "failed to start";
  }
  return exit;
}

export function createExecaLauncher(): Launcher {
  return {
    launch(file, args, options) {
      const sub = execa(file, [...args], {
        shell: false,
        reject: false,
        buffer: false,
        stdin: options.stdin === true ? "pipe" : "ignore",
        forceKillAfterDelay: options.stopGraceMs,
        ...(options.timeoutMs !== undefined ? { timeout: options.timeoutMs } : {}),
        ...(options.signal !== undefined ? { cancelSignal: options.signal } : {}),
        ...(options.env !== undefined ? { env: options.env } : {}),
      });
      // A child that died makes writes fail with EPIPE; its exit is what reports the failure.
      sub.stdin?.on("error", () => undefined);
      const lines = Promise.all([drain(sub.stdout, "stdout", options), drain(sub.stderr, "stderr", options)]);
      let ended = false;
      const exit = (async (): Promise<ProcessExit> => {
        const result = await sub;
        ended = true;
        await lines;
        return processExit(result);
      })();
      return {
        pid: sub.pid,
        exit,
        write: (text) => void sub.stdin?.write(text),
        endInput: () => void sub.stdin?.end(),
        kill: () => {
          if (!ended) sub.kill("SIGTERM");
        },
      };
    },
  };
}
