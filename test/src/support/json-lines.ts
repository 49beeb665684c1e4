// Reading a JSON-lines file written by an appending process (records, ledgers). A missing file
// holds no lines. A line that does not parse is a torn write from a crash (`torn: "skip"`, the
// default) or a defect (`torn: "throw"`).
import { readFileSync } from "node:fs";

export interface JsonLinesOptions {
  torn?: "skip" | "throw";
}

/** Every parsed line of `path`, in order. */
export function readJsonLines(path: string, options: JsonLinesOptions = {}): unknown[] {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw err;
  }
  const values: unknown[] = [];
  for (const line of text.split("\n")) {
    if (!line) continue;
    try {
      values.push(JSON.parse(line));
    } catch (err) {
      if (options.torn === "throw") throw new Error(`bad line in ${path}: ${line}`, { cause: err });
    }
  }
  return values;
}

/**
 * The `summary` line of `lullctl --json backup --wait` / `wait` output (one JSON object per line:
 * the job's timeline, then the summary, then an error line when it failed). Throws when there is none.
 */
export function lullctlSummary(stdout: string): { job: Record<string, any>; [key: string]: unknown } {
  const docs = stdout.split("\n").filter(Boolean).map((l) => JSON.parse(l) as Record<string, any>);
  const summary = docs.filter((d) => d.type === "summary").at(-1);
  if (summary === undefined) throw new Error(`no summary line in lullctl's output: ${stdout.slice(-500)}`);
  return summary as { job: Record<string, any> };
}
