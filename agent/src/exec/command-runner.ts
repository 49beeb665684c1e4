// Port: running an external command. argv arrays only, never a shell.
// The real adapter is ./execa-runner.ts; tests use a recording fake.

export interface CommandOptions {
  signal?: AbortSignal;
  cwd?: string;
  /** Environment for the child; replaces the inherited one when `extendEnv` is false. */
  env?: Record<string, string>;
  extendEnv?: boolean;
  input?: string;
  timeoutMs?: number;
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
