// Where lullctl writes: stdout for results, stderr for diagnostics. A port so tests can capture it.
import type { Writable } from "node:stream";

export interface Output {
  /** A whole line on stdout. */
  line(text: string): void;
  /** Raw text on stdout (a progress bar redrawing itself). */
  write(text: string): void;
  /** A whole line on stderr. */
  error(text: string): void;
  /** stdout is a terminal: progress bars instead of periodic lines. */
  readonly isTTY: boolean;
  readonly columns: number;
}

interface TerminalLike extends Writable {
  isTTY?: boolean;
  columns?: number;
}

export function streamOutput(stdout: TerminalLike, stderr: Writable): Output {
  return {
    line: (text) => void stdout.write(`${text}\n`),
    write: (text) => void stdout.write(text),
    error: (text) => void stderr.write(`${text}\n`),
    isTTY: stdout.isTTY === true,
    columns: stdout.columns ?? 80,
  };
}

/** An Output that keeps everything in memory, for tests. */
export interface CapturedOutput extends Output {
  readonly stdout: string;
  readonly stderr: string;
  /** stdout split into lines (without the trailing empty one). */
  readonly lines: string[];
}

export function captureOutput(options: { isTTY?: boolean; columns?: number } = {}): CapturedOutput {
  let stdout = "";
  let stderr = "";
  return {
    line: (text) => void (stdout += `${text}\n`),
    write: (text) => void (stdout += text),
    error: (text) => void (stderr += `${text}\n`),
    isTTY: options.isTTY ?? false,
    columns: options.columns ?? 80,
    get stdout() {
      return stdout;
    },
    get stderr() {
      return stderr;
    },
    get lines() {
      return stdout.split("\n").slice(0, -1);
    },
  };
}
