// A daemon under test as a real child process: its stdout JSON log lines (pino) are parsed and
// kept, so a test can wait for a line and read its fields; stop with SIGTERM, or kill -9.
import { spawn, type ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";

/** One pino log line, as parsed JSON. */
export interface LogLine {
  msg?: string;
  level?: string;
  time?: string;
  [field: string]: unknown;
}

export interface ExitStatus {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface StartProcessOptions {
  /** A short name used in error messages (`agent`, `controller:app`). */
  name: string;
  /** Executable, default: this Node binary. */
  command?: string;
  args: readonly string[];
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Print every output line as `[name] line` on stderr (for watching a test or the demo). */
  echo?: boolean;
}

export interface ManagedProcess {
  readonly name: string;
  readonly pid: number;
  /** stdout lines that parsed as JSON objects, in order. */
  readonly logs: LogLine[];
  /** stdout lines that were not JSON. */
  readonly plainLines: string[];
  /** stderr lines. */
  readonly stderrLines: string[];
  /** Set once the process has exited. */
  readonly exitStatus: ExitStatus | undefined;
  readonly exited: Promise<ExitStatus>;
  /** How many log lines there are now: pass as `after` to wait only for later lines. */
  mark(): number;
  /**
   * The first log line (index ≥ `after`, default 0) matching `predicate`, waiting up to `timeoutMs`.
   * Rejects early when the process exits, with the tail of its output in the message.
   */
  waitForLog(predicate: (line: LogLine) => boolean, timeoutMs: number, after?: number): Promise<LogLine>;
  /** Log lines with this `msg`. */
  logsWithMsg(msg: string): LogLine[];
  /** Waits for the process to exit on its own; rejects after `timeoutMs` (the process keeps running). */
  waitForExit(timeoutMs: number): Promise<ExitStatus>;
  /** SIGTERM, then SIGKILL if it has not exited after `timeoutMs`. */
  stop(timeoutMs?: number): Promise<ExitStatus>;
  /** kill -9 and wait for the exit. */
  kill9(): Promise<ExitStatus>;
  /** The last lines of stdout and stderr, for failure messages. */
  tail(lines?: number): string;
}

export function startProcess(options: StartProcessOptions): ManagedProcess {
  const child: ChildProcess = spawn(options.command ?? process.execPath, [...options.args], {
    cwd: options.cwd,
    env: options.env ?? process.env,
    stdio: ["ignore", "pipe", "pipe"],
    shell: false,
  });
  if (child.pid === undefined) throw new Error(`${options.name}: could not start ${options.command ?? "node"}`);
  const logs: LogLine[] = [];
  const plainLines: string[] = [];
  const stderrLines: string[] = [];
  const allLines: string[] = [];
  const listeners = new Set<() => void>();
  let exitStatus: ExitStatus | undefined;
  const notify = () => listeners.forEach((l) => l());

  const onLine = (line: string, fromStderr: boolean) => {
    allLines.push(line);
    if (allLines.length > 400) allLines.shift();
    if (options.echo) process.stderr.write(`[${options.name}] ${line}\n`);
    if (fromStderr) stderrLines.push(line);
    else {
      let parsed: unknown;
      try {
        parsed = JSON.parse(line);
      } catch {
        parsed = undefined;
      }
      if (parsed && typeof parsed === "object" && !Array.isArray(parsed)) logs.push(parsed as LogLine);
      else plainLines.push(line);
    }
    notify();
  };
  createInterface({ input: child.stdout! }).on("line", (l) => onLine(l, false));
  createInterface({ input: child.stderr! }).on("line", (l) => onLine(l, true));
  const exited = new Promise<ExitStatus>((resolve) => {
    child.on("exit", (code, signal) => {
      exitStatus = { code, signal };
      // let readline flush the last lines before waiters see the exit
      setImmediate(() => {
        notify();
        resolve({ code, signal });
      });
    });
  });

  const tail = (n = 30) => allLines.slice(-n).join("\n");

  const proc: ManagedProcess = {
    name: options.name,
    pid: child.pid,
    logs,
    plainLines,
    stderrLines,
    get exitStatus() {
      return exitStatus;
    },
    exited,
    mark: () => logs.length,
    logsWithMsg: (msg) => logs.filter((l) => l.msg === msg),
    tail,
    waitForLog(predicate, timeoutMs, after = 0) {
      return new Promise<LogLine>((resolve, reject) => {
        let index = after;
        const check = () => {
          for (; index < logs.length; index++) {
            const line = logs[index]!;
            if (predicate(line)) return finish(() => resolve(line));
          }
          if (exitStatus) {
            finish(() =>
              reject(new Error(`${options.name} exited (${exitStatus!.code ?? exitStatus!.signal}) before the awaited log line; output:\n${tail()}`)),
            );
          }
        };
        const timer = setTimeout(
          () => finish(() => reject(new Error(`${options.name}: no matching log line within ${timeoutMs} ms; output:\n${tail()}`))),
          timeoutMs,
        );
        const finish = (settle: () => void) => {
          clearTimeout(timer);
          listeners.delete(check);
          settle();
        };
        listeners.add(check);
        check();
      });
    },
    waitForExit(timeoutMs) {
      return new Promise<ExitStatus>((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`${options.name} did not exit within ${timeoutMs} ms; output:\n${tail()}`)),
          timeoutMs,
        );
        void exited.then((status) => {
          clearTimeout(timer);
          resolve(status);
        });
      });
    },
    async stop(timeoutMs = 10_000) {
      if (exitStatus) return exitStatus;
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
      try {
        return await exited;
      } finally {
        clearTimeout(timer);
      }
    },
    async kill9() {
      if (exitStatus) return exitStatus;
      child.kill("SIGKILL");
      return exited;
    },
  };
  return proc;
}

/** kill -9 a process by pid (one the harness did not start, e.g. from a pid file); gone is fine. */
export function killPid9(pid: number): boolean {
  try {
    process.kill(pid, "SIGKILL");
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ESRCH") return false;
    throw err;
  }
}

/** Whether a process with this pid exists. */
export function isPidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}
