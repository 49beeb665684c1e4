// How commands and their output appear in messages and logs, the same for every runner.
import { LullError } from "../errors.js";

/** How many trailing stderr lines an error message quotes. */
export const STDERR_TAIL_LINES = 5;

/** `btrfs subvolume show '/srv/my data'`: argv as a reader would type it (for messages and logs only). */
export function formatArgv(file: string, args: readonly string[] = []): string {
  return [file, ...args].map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replaceAll("'", `'\\''`)}'`)).join(" ");
}

/** The last `count` non-empty lines of a command's output, joined with " | ". */
export function tailLines(text: string, count = STDERR_TAIL_LINES): string {
  return text
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l.length > 0)
    .slice(-count)
    .join(" | ");
}

/** A configured argv (`["docker", "compose", "stop"]`) as the runner's file and args; an empty one is refused. */
export function splitArgv(argv: readonly string[]): [file: string, args: string[]] {
  const [file, ...args] = argv;
  if (file === undefined) throw new LullError("LULL_E_COMMAND_FAILED", "empty command");
  return [file, args];
}
