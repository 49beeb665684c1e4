// A long-lived client process whose session holds a quiesce: psql in PostgreSQL's backup mode,
// mongosh holding fsyncLock. Launched on the shared Launcher (argv array, never a shell); text
// goes to its stdin, and each exchange waits — with a timeout — until its stdout matches a
// pattern. Between `open` and `close` the process (and so the database session) stays alive.
//
// A failure to open kills the process: a half-open session must not outlive its step (for
// PostgreSQL the server ends the backup with the session). `close` writes the stop text, waits for
// its confirmation, closes stdin and waits for the client to exit; past the timeouts it is killed.
import { LullError, formatArgv, splitArgv, tailLines, type LaunchedProcess, type Launcher } from "@lull/shared";

export interface SessionSpec {
  argv: readonly string[];
  env?: Readonly<Record<string, string>> | undefined;
  /** Written to stdin at open (a newline is appended when missing). */
  start: string;
  /** Matched against stdout written since `start` was sent. */
  ready: RegExp;
  timeoutMs: number;
  stop: string;
  done: RegExp;
  stopTimeoutMs: number;
}

export interface SessionExit {
  exitCode: number | undefined;
  signal: string | undefined;
  /** Why it did not run at all (spawn error), if so. */
  cause: string | undefined;
}

const EXIT_WAIT_MS = 5_000;
const KEEP_STDERR = 4_096;
/** After SIGTERM, how long the client gets before SIGKILL. */
const STOP_GRACE_MS = 2_000;

export class ClientSession {
  private stdout = "";
  private stderr = "";
  private exit: SessionExit | undefined;
  private readonly child: LaunchedProcess;
  private readonly exited: Promise<SessionExit>;
  private wake: (() => void) | undefined;
  private readonly onEarlyExit: ((exit: SessionExit, stderr: string) => void) | undefined;
  /** Opened and not being closed: an exit now is an early one. */
  private holding = false;

  private constructor(
    private readonly spec: SessionSpec,
    launcher: Launcher,
    onEarlyExit?: (exit: SessionExit, stderr: string) => void,
  ) {
    this.onEarlyExit = onEarlyExit;
    const [file, args] = splitArgv(spec.argv);
    this.child = launcher.launch(file, args, {
      stdin: true,
      stopGraceMs: STOP_GRACE_MS,
      env: spec.env ?? {},
      onData: (text, stream) => {
        if (stream === "stderr") {
          this.stderr = (this.stderr + text).slice(-KEEP_STDERR);
          return;
        }
        this.stdout += text;
        this.wake?.();
      },
    });
    this.exited = this.child.exit.then((r) => {
      this.exit = { exitCode: r.exitCode, signal: r.signal, cause: r.startError };
      this.wake?.();
      if (this.holding) this.onEarlyExit?.(this.exit, this.stderrTail());
      return this.exit;
    });
  }

  /**
   * Spawns the client, sends `start` and waits for `ready`. Resolves with the session and the stdout
   * up to the end of the match; on failure (exit, timeout, abort) the client is killed and the
   * LullError says why, with the client's stderr: LULL_E_CANCELLED for an abort, else
   * LULL_E_COMMAND_FAILED.
   */
  static async open(
    launcher: Launcher,
    spec: SessionSpec,
    signal: AbortSignal | undefined,
    onEarlyExit?: (exit: SessionExit, stderr: string) => void,
  ): Promise<{ session: ClientSession; output: string }> {
    const session = new ClientSession(spec, launcher, onEarlyExit);
    try {
      const output = await session.exchange(spec.start, spec.ready, spec.timeoutMs, "ready", signal);
      session.holding = session.exit === undefined;
      return { session, output };
    } catch (err) {
      await session.kill();
      throw err;
    }
  }

  get alive(): boolean {
    return this.exit === undefined;
  }

  /** The client's exit, when it has exited. */
  get exitInfo(): SessionExit | undefined {
    return this.exit;
  }

  /** The last lines of the client's stderr, one line. */
  stderrTail(): string {
    return tailLines(this.stderr);
  }

  /**
   * Sends `stop`, waits for `done`, closes stdin and waits for the client to exit. Resolves with the
   * stdout written after `stop` up to the end of the match. Never leaves the process behind.
   */
  async close(): Promise<string> {
    this.holding = false;
    try {
      if (this.exit !== undefined) throw new LullError("LULL_E_COMMAND_FAILED", `the session ended before resume (${this.describeExit(this.exit)})`);
      const output = await this.exchange(this.spec.stop, this.spec.done, this.spec.stopTimeoutMs, "done", undefined);
      this.child.endInput();
      await this.waitForExit(Math.min(this.spec.stopTimeoutMs, EXIT_WAIT_MS));
      return output;
    } finally {
      await this.kill();
    }
  }

  /** Kills the client if it still runs and waits (bounded) for it to be gone. */
  async kill(): Promise<void> {
    this.holding = false;
    if (this.exit !== undefined) return;
    this.child.kill();
    await this.waitForExit(EXIT_WAIT_MS);
  }

  private describeExit(exit: SessionExit): string {
    const how = exit.cause ?? (exit.signal ? `killed by ${exit.signal}` : `exit ${exit.exitCode}`);
    const err = this.stderrTail();
    return `${formatArgv(this.spec.argv[0] ?? "")}: ${how}${err ? `: ${err}` : ""}`;
  }

  private async waitForExit(timeoutMs: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.exited, new Promise((r) => (timer = setTimeout(r, timeoutMs)))]);
    clearTimeout(timer);
  }

  /** Writes `text` and waits until stdout written after it matches `pattern`. */
  private exchange(text: string, pattern: RegExp, timeoutMs: number, what: string, signal: AbortSignal | undefined): Promise<string> {
    const from = this.stdout.length;
    this.child.write(text.endsWith("\n") ? text : `${text}\n`);
    return new Promise<string>((resolve, reject) => {
      const finish = (fn: () => void) => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
        this.wake = undefined;
        fn();
      };
      const check = () => {
        const seen = this.stdout.slice(from);
        const match = pattern.exec(seen);
        if (match) return finish(() => resolve(seen.slice(0, match.index + match[0].length)));
        if (this.exit !== undefined) {
          const exit = this.exit;
          finish(() => reject(new LullError("LULL_E_COMMAND_FAILED", `the session ended before it was ${what} (${this.describeExit(exit)})`)));
        }
      };
      const onAbort = () => finish(() => reject(new LullError("LULL_E_CANCELLED", `the session was cancelled before it was ${what}`)));
      const timer = setTimeout(() => {
        const err = this.stderrTail();
        finish(() => reject(new LullError("LULL_E_COMMAND_FAILED", `the session was not ${what} after ${timeoutMs} ms${err ? `: ${err}` : ""}`)));
      }, timeoutMs);
      if (signal?.aborted) return onAbort();
      signal?.addEventListener("abort", onAbort, { once: true });
      this.wake = check;
      check();
    });
  }
}
