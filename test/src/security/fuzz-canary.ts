// The fuzz run's canary: what the agent executed and what it left on disk.
//  - The agent runs with PATH set to a directory of shims (cp, tar, zstd, openssl) that record
//    their argv before exec'ing the real program; nothing else is on its PATH.
//  - Before and after: the guests' volumes (with canary files), the scratch tree outside the
//    agent's own roots, and /tmp are listed; a shell injection would leave a sentinel file.
import { createHash } from "node:crypto";
import { chmod, mkdir, readFile, readdir, writeFile } from "node:fs/promises";
import { isAbsolute, join, relative, resolve } from "node:path";
import { MARKER } from "./fuzz-requests.js";

/** Programs the agent may run with a dir-driver guest, and where the real ones are. */
export const ALLOWED_PROGRAMS: Readonly<Record<string, string>> = { cp: "/usr/bin/cp", tar: "/usr/bin/tar", zstd: "/usr/bin/zstd", openssl: "/usr/bin/openssl" };

const RS = "\u001e";
const US = "\u001f";

/**
 * Writes the shims into `dir`. Each appends `name US arg US arg … RS` to a file of its own,
 * `$LULL_FUZZ_CMDLOG/<pid>.rec`: the agent runs `tar | zstd` as two processes at once, and their
 * records written into one shared file would interleave.
 */
export async function writeCommandShims(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  for (const [name, real] of Object.entries(ALLOWED_PROGRAMS)) {
    const script = [
      "#!/bin/sh",
      "# fuzz canary: record argv, then run the real program",
      `{ printf '%s' "\${0##*/}"; for a in "$@"; do printf '\\037%s' "$a"; done; printf '\\036\\n'; } >> "$LULL_FUZZ_CMDLOG/$$.rec"`,
      `exec ${real} "$@"`,
      "",
    ].join("\n");
    await writeFile(join(dir, name), script);
    await chmod(join(dir, name), 0o755);
  }
}

export interface RecordedCommand {
  program: string;
  args: string[];
}

/** Every record in the shims' log directory (one file per process). */
export async function readCommandLog(dir: string): Promise<RecordedCommand[]> {
  const files = (await readdir(dir)).filter((n) => n.endsWith(".rec")).sort();
  const texts = await Promise.all(files.map((n) => readFile(join(dir, n), "utf8")));
  return texts
    .join("")
    .split(`${RS}\n`)
    .filter((r) => r.length > 0)
    .map((r) => {
      const [program, ...args] = r.split(US);
      return { program: program ?? "", args };
    });
}

const inside = (root: string, path: string) => {
  const rel = relative(root, resolve(path));
  return rel === "" || (!rel.startsWith("..") && !isAbsolute(rel));
};

/** Why a recorded command should not have run, or undefined. */
export function commandProblem(cmd: RecordedCommand, scratch: string): string | undefined {
  if (!(cmd.program in ALLOWED_PROGRAMS)) return `unexpected program ${cmd.program}`;
  if (cmd.args.some((a) => a.includes(MARKER))) return `request data reached argv: ${cmd.program} ${cmd.args.join(" ")}`;
  const dashdash = cmd.args.indexOf("--");
  for (const [i, a] of cmd.args.entries()) {
    const member = cmd.program === "tar" && dashdash >= 0 && i > dashdash ? `/${a}` : a;
    if (member.startsWith("/") && !inside(scratch, member)) return `${cmd.program} touched ${member}, outside the scratch dir`;
  }
  return undefined;
}

/** Relative paths (with a content hash for files) of everything under `root`, minus `skip`. */
export async function listTree(root: string, skip: readonly string[] = []): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const walk = async (dir: string): Promise<void> => {
    for (const entry of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
      const path = join(dir, entry.name);
      if (skip.some((s) => inside(s, path))) continue;
      const rel = relative(root, path);
      if (entry.isDirectory()) {
        out.set(`${rel}/`, "dir");
        await walk(path);
      } else if (entry.isFile()) {
        out.set(rel, createHash("sha256").update(await readFile(path)).digest("hex"));
      } else {
        out.set(rel, entry.isSocket() ? "socket" : entry.isSymbolicLink() ? "symlink" : "other");
      }
    }
  };
  await walk(root);
  return out;
}

/** Entries added, removed or changed between two listings. */
export function treeDiff(before: Map<string, string>, after: Map<string, string>): string[] {
  const changes: string[] = [];
  for (const [k, v] of after) if (before.get(k) !== v) changes.push(before.has(k) ? `changed ${k}` : `added ${k}`);
  for (const k of before.keys()) if (!after.has(k)) changes.push(`removed ${k}`);
  return changes;
}

/** Paths under `root` whose name carries the fuzz marker. */
export async function markedPaths(root: string): Promise<string[]> {
  return [...(await listTree(root)).keys()].filter((p) => p.includes(MARKER));
}
