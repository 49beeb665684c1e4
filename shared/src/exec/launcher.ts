// Port: a long-lived command whose output is needed while it runs, and which may be talked to on
// stdin: vzdump (the QEMU `started backup task` line marks the consistent point, progress lines
// report bytes), or a database client whose open session holds a quiesce. The CommandRunner port
// only returns at the end, hence this one. Real adapter: ./execa.ts (argv, never a
// shell); a cancel or timeout sends SIGTERM (the program's own cleanup runs) and SIGKILL after
// `stopGraceMs`. The exit is reported, never thrown: what it means is the caller's to say.

export interface LaunchOptions {
  /** Each output line as it arrives (stdout and stderr, in arrival order per stream). */
  onLine?(line: string, stream: "stdout" | "stderr"): void;
  /** Output text as it arrives, not split into lines (a prompt may not end in a newline). */
  onData?(text: string, stream: "stdout" | "stderr"): void;
  signal?: AbortSignal | undefined;
  /** After SIGTERM (cancel, timeout or kill), how long before SIGKILL. */
  stopGraceMs: number;
  /** Unset: no limit (the caller bounds each exchange itself). */
  timeoutMs?: number | undefined;
  /** Added to the inherited environment. */
  env?: Readonly<Record<string, string>> | undefined;
  /** Keep stdin open for `write`; by default the child's stdin is closed. */
  stdin?: boolean;
}

export interface ProcessExit {
  exitCode: number | undefined;
  signal: string | undefined;
  cancelled: boolean;
  timedOut: boolean;
  /** Could not start (`spawn /usr/bin/vzdump ENOENT`): the reason. */
  startError?: string;
}

export interface LaunchedProcess {
  readonly pid: number | undefined;
  /** Resolves once the process has exited and every output line was delivered. */
  readonly exit: Promise<ProcessExit>;
  /** Writes to the child's stdin (launched with `stdin: true`); a child that died ignores it. */
  write(text: string): void;
  /** Closes the child's stdin. */
  endInput(): void;
  /** Sends SIGTERM (SIGKILL after the grace) unless it already exited. */
  kill(): void;
}

export interface Launcher {
  launch(file: string, args: readonly string[], options: LaunchOptions): LaunchedProcess;
}
