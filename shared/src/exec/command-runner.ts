// Port: running an external command to its end. argv arrays only, never a shell.
// The real adapter is ./execa.ts; tests use the recording fake from @lull/shared/testing.
//
// One error mapping for every caller: an aborted signal is LULL_E_CANCELLED; a command that
// cannot start, is killed, times out or (unless `reject: false`) exits non-zero is
// LULL_E_COMMAND_FAILED naming its argv and the last lines of its stderr.

export interface CommandOptions {
  signal?: AbortSignal | undefined;
  cwd?: string;
  /** Environment for the child; added to the inherited one unless `extendEnv` is false. */
  env?: Readonly<Record<string, string>> | undefined;
  extendEnv?: boolean;
  input?: string;
  timeoutMs?: number;
  /** After SIGTERM (abort or timeout), how long the child gets before SIGKILL. */
  stopGraceMs?: number;
  /** Default true: a non-zero exit throws LullError(LULL_E_COMMAND_FAILED) naming argv and the last stderr lines. */
  reject?: boolean;
}

export interface CommandResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

export interface CommandRunner {
  run(file: string, args: readonly string[], options?: CommandOptions): Promise<CommandResult>;
}
