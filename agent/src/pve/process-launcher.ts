// Port: a long-running command whose output is needed line by line while it runs (vzdump: the
// QEMU `started backup task` line marks the consistent point, progress lines report bytes).
// The CommandRunner port only returns at the end, hence this one. Real adapter: execa (argv,
// never a shell); cancel sends SIGTERM (vzdump's own cleanup runs) and SIGKILL after a grace.
import { createInterface } from "node:readline";
import { execa } from "execa";

export interface LaunchOptions {
  /** Each output line as it arrives (stdout and stderr, in arrival order per stream). */
  onLine(line: string, stream: "stdout" | "stderr"): void;
  signal?: AbortSignal | undefined;
  /** After SIGTERM (cancel or timeout), how long before SIGKILL. */
  stopGraceMs: number;
  timeoutMs: number;
  /** Added to the inherited environment. */
  env?: Record<string, string>;
}

export interface ProcessExit {
  exitCode: number | undefined;
  signal: string | undefined;
  cancelled: boolean;
  timedOut: boolean;
  /** Could not start (ENOENT…): the reason. */
  startError?: string;
}

export interface LaunchedProcess {
  readonly pid: number | undefined;
  /** Resolves once the process has exited and every output line was delivered. */
  readonly exit: Promise<ProcessExit>;
}

export interface ProcessLauncher {
  launch(file: string, args: readonly string[], options: LaunchOptions): LaunchedProcess;
}

export function createExecaLauncher(): ProcessLauncher {
  return {
    launch(file, args, options) {
      const sub = execa(file, [...args], {
        shell: false,
        reject: false,
        buffer: false,
        stdin: "ignore",
        timeout: options.timeoutMs,
        forceKillAfterDelay: options.stopGraceMs,
        ...(options.signal !== undefined ? { cancelSignal: options.signal } : {}),
        ...(options.env !== undefined ? { env: options.env } : {}),
      });
      const drained = (stream: NodeJS.ReadableStream | null, name: "stdout" | "stderr") =>
        new Promise<void>((resolve) => {
          if (!stream) return resolve();
          const rl = createInterface({ input: stream, crlfDelay: Infinity });
          rl.on("line", (line) => options.onLine(line, name));
          rl.on("close", () => resolve());
        });
      const lines = Promise.all([drained(sub.stdout, "stdout"), drained(sub.stderr, "stderr")]);
      const exit = (async (): Promise<ProcessExit> => {
        const result = await sub;
        await lines;
        const out: ProcessExit = {
          exitCode: result.exitCode,
          signal: result.signal,
          cancelled: result.isCanceled,
          timedOut: result.timedOut,
        };
        if (result.exitCode === undefined && result.signal === undefined && result.failed) out.startError = result.shortMessage ?? "failed to start";
        return out;
      })();
      return { pid: sub.pid, exit };
    },
  };
}
