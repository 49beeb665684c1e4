// A slow-down knob for a real command, without touching the code that runs it: a shim named like
// the command, first on PATH, that waits `delayMs` when its arguments start with a given prefix
// and then runs the real executable with the same argv and stdio (signals forwarded, exit code
// passed through). E.g. `btrfs subvolume snapshot` 250 ms late, to widen the window between the
// snapshots of a guest's volumes.
import { accessSync, constants } from "node:fs";
import { chmod, mkdir, writeFile } from "node:fs/promises";
import { delimiter, join } from "node:path";

export interface SlowCommandOptions {
  /** Directory for the shim (created); put it first on PATH (see `env`). */
  binDir: string;
  /** Name of the command, as the caller looks it up on PATH (`btrfs`). */
  command: string;
  /** How long to wait before running the real command. */
  delayMs: number;
  /** Only delay when the arguments start with these (default: always). */
  whenArgsStartWith?: readonly string[];
  /** PATH to find the real command on; default this process's PATH. */
  searchPath?: string;
}

export interface SlowCommand {
  /** The real executable the shim runs. */
  readonly realPath: string;
  readonly shimPath: string;
  /** `base` (default process.env) with the shim's directory first on PATH. */
  env(base?: NodeJS.ProcessEnv): NodeJS.ProcessEnv;
}

/** The absolute path of `command` on `searchPath`, skipping `exclude`; throws when not found. */
export function whichCommand(command: string, searchPath: string, exclude?: string): string {
  for (const dir of searchPath.split(delimiter)) {
    if (!dir || dir === exclude) continue;
    const candidate = join(dir, command);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  throw new Error(`${command} not found on PATH ${searchPath}`);
}

function shimSource(realPath: string, delayMs: number, prefix: readonly string[]): string {
  // Works whether Node loads the extensionless file as CommonJS or as ESM (dynamic import only).
  return `#!${process.execPath}
// Test shim written by test/src/support/slow-command.ts: delays, then runs ${realPath}.
const REAL = ${JSON.stringify(realPath)};
const DELAY_MS = ${JSON.stringify(delayMs)};
const PREFIX = ${JSON.stringify(prefix)};
const args = process.argv.slice(2);
const slow = PREFIX.every((word, i) => args[i] === word);
import("node:child_process").then(({ spawn }) => {
  setTimeout(() => {
    const child = spawn(REAL, args, { stdio: "inherit", shell: false });
    for (const signal of ["SIGTERM", "SIGINT", "SIGHUP"]) process.on(signal, () => child.kill(signal));
    child.on("error", (err) => { process.stderr.write("shim: " + err.message + "\\n"); process.exit(127); });
    child.on("exit", (code, signal) => process.exit(code ?? (signal ? 128 : 1)));
  }, slow ? DELAY_MS : 0);
});
`;
}

/** Writes the shim; the real command is resolved now, so a missing one fails here. */
export async function installSlowCommand(options: SlowCommandOptions): Promise<SlowCommand> {
  if (!/^[A-Za-z0-9._-]+$/.test(options.command)) throw new Error(`bad command name ${options.command}`);
  const searchPath = options.searchPath ?? process.env.PATH ?? "";
  const realPath = whichCommand(options.command, searchPath, options.binDir);
  await mkdir(options.binDir, { recursive: true });
  const shimPath = join(options.binDir, options.command);
  await writeFile(shimPath, shimSource(realPath, options.delayMs, options.whenArgsStartWith ?? []));
  await chmod(shimPath, 0o755);
  return {
    realPath,
    shimPath,
    env: (base = process.env) => ({ ...base, PATH: [options.binDir, base.PATH ?? searchPath].join(delimiter) }),
  };
}
