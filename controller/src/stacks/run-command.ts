// Runs one external command for a stack driver: argv array, never a shell, an explicit timeout,
// cancellation through an AbortSignal. Failing to run at all (missing binary, timeout, abort) is a
// LullError(LULL_E_COMMAND_FAILED); a non-zero exit is returned for the driver to interpret.
import { execa } from "execa";
import { LullError } from "@lull/shared";

export interface CommandOutcome {
  exitCode: number;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  timeoutMs: number;
  signal?: AbortSignal | undefined;
  /** Added to the controller's environment (quiesce steps get LULL_JOB_ID, LULL_STACK, LULL_HOOK). */
  env?: Readonly<Record<string, string>> | undefined;
}

/** The last lines of a command's output, for error messages. */
export function tail(text: string, lines = 5): string {
  return text.trim().split("\n").slice(-lines).join(" | ");
}

export function describeArgv(argv: readonly string[]): string {
  return argv.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : JSON.stringify(a))).join(" ");
}

export async function runCommand(argv: readonly string[], options: RunOptions): Promise<CommandOutcome> {
  const [file, ...args] = argv;
  if (file === undefined) throw new LullError("LULL_E_COMMAND_FAILED", "empty command");
  const result = await execa(file, args, {
    shell: false,
    reject: false,
    stdin: "ignore",
    timeout: options.timeoutMs,
    forceKillAfterDelay: 2_000,
    ...(options.signal ? { cancelSignal: options.signal } : {}),
    encoding: "utf8",
    maxBuffer: 4 * 1024 * 1024,
    ...(options.env ? { env: options.env, extendEnv: true } : {}),
  });
  if (result.timedOut) {
    throw new LullError("LULL_E_COMMAND_FAILED", `${describeArgv(argv)} timed out after ${options.timeoutMs} ms`);
  }
  if (result.isCanceled) {
    throw new LullError("LULL_E_COMMAND_FAILED", `${describeArgv(argv)} was cancelled`);
  }
  if (result.exitCode === undefined) {
    const why = result.signal ? `killed by ${result.signal}` : (result.cause as Error | undefined)?.message ?? "did not run";
    throw new LullError("LULL_E_COMMAND_FAILED", `${describeArgv(argv)}: ${why}`);
  }
  return { exitCode: result.exitCode, stdout: String(result.stdout ?? ""), stderr: String(result.stderr ?? "") };
}
