// A long-lived client process whose session holds a quiesce: psql in PostgreSQL's backup mode,
// mongosh holding fsyncLock. Spawned with an argv array (never a shell); text goes to its stdin,
// and each exchange waits — with a timeout — until its stdout matches a pattern. Between `open`
// and `close` the process (and so the database session) stays alive.
//
// A failure to open kills the process: a half-open session must not outlive its step (for
// PostgreSQL the server ends the backup with the session). `close` writes the stop text, waits for
// its confirmation, closes stdin and waits for the client to exit; past the timeouts it is killed.
import { execa } from "execa";
import { LullError } from "@lull/shared";
import { describeArgv } from "../stacks/run-command.js";

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

function spawnClient(file: string, args: readonly string[], env: Readonly<Record<string, string>>) {
  return execa(file, args, {
    shell: false,
    reject: false,
    stdin: "pipe",
    stdout: "pipe",
    stderr: "pipe",
    buffer: false,
    cleanup: true,
    forceKillAfterDelay: 2_000,
    env,
    extendEnv: true,
  });
}

type Child = ReturnType<typeof spawnClient>;

export class ClientSession {
  private stdout = "";
  private stderr = "";
  private exit: SessionExit | undefined;
  private readonly exited: Promise<SessionExit>;
  private wake: (() => void) | undefined;
  private readonly onEarlyExit: ((exit: SessionExit, stderr: string) => void) | undefined;
  /** Opened and not being closed: an exit now is an early one. */
  private holding = false;

  private constructor(
    private readonly spec: SessionSpec,
    private readonly child: Child,
    onEarlyExit?: (exit: SessionExit, stderr: string) => void,
  ) {
    this.onEarlyExit = onEarlyExit;
    child.stdout.setEncoding("utf8");
    child.stderr.setEncoding("utf8");
    child.stdout.on("data", (chunk: string) => {
      this.stdout += chunk;
      this.wake?.();
    });
    child.stderr.on("data", (chunk: string) => {
      this.stderr = (this.stderr + chunk).slice(-KEEP_STDERR);
    });
    // A client that died makes writes fail with EPIPE; its exit is what reports the failure.
    child.stdin.on("error", () => undefined);
    this.exited = child.then((r) => {
      const cause = r.exitCode === undefined && !r.signal ? (r.cause as Error | undefined)?.message : undefined;
      this.exit = { exitCode: r.exitCode, signal: r.signal, cause };
      this.wake?.();
      if (this.holding) this.onEarlyExit?.(this.exit, this.stderrTail());
      return this.exit;
    });
  }

  /**
   * Spawns the client, sends `start` and waits for `ready`. Resolves with the session and the stdout
   * up to the end of the match; on failure (exit, timeout, abort) the client is killed and the
   * LullError(LULL_E_COMMAND_FAILED) says why, with the client's stderr.
   */
  static async open(
    spec: SessionSpec,
    signal: AbortSignal | undefined,
    onEarlyExit?: (exit: SessionExit, stderr: string) => void,
  ): Promise<{ session: ClientSession; output: string }> {
    const [file, ...args] = spec.argv;
    if (file === undefined) throw new LullError("LULL_E_COMMAND_FAILED", "empty command");
    const child = spawnClient(file, args, spec.env ?? {});
    const session = new ClientSession(spec, child, onEarlyExit);
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
    return this.stderr
      .split("\n")
      .map((l) => l.trim())
      .filter(Boolean)
      .slice(-5)
      .join(" | ");
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
      this.child.stdin.end();
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
    this.child.kill("SIGTERM");
    await this.waitForExit(EXIT_WAIT_MS);
  }

  private describeExit(exit: SessionExit): string {
    const how = exit.cause ?? (exit.signal ? `killed by ${exit.signal}` : `exit ${exit.exitCode}`);
    const err = this.stderrTail();
    return `${describeArgv(this.spec.argv.slice(0, 1))}: ${how}${err ? `: ${err}` : ""}`;
  }

  private async waitForExit(timeoutMs: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.exited, new Promise((r) => (timer = setTimeout(r, timeoutMs)))]);
    clearTimeout(timer);
  }

  /** Writes `text` and waits until stdout written after it matches `pattern`. */
  private exchange(text: string, pattern: RegExp, timeoutMs: number, what: string, signal: AbortSignal | undefined): Promise<string> {
    const from = this.stdout.length;
    this.child.stdin.write(text.endsWith("\n") ? text : `${text}\n`);
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
      const onAbort = () => finish(() => reject(new LullError("LULL_E_COMMAND_FAILED", `the session was cancelled before it was ${what}`)));
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
