// The archive's byte total, measured before it starts: the sum of the sizes of the
// regular files under each read path (symlinks are not followed, the read path itself
// included). GNU find walks each tree and prints one size per file, which this process only
// sums (about 50 ms per 6,000 files here). Where find cannot be run (not on PATH), the tree is
// walked in-process: entry types from readdir, lstat only for files, 64 at once per directory
// (a few times slower). Files that vanish while walking a live path are skipped either way.
import { lstat, readdir } from "node:fs/promises";
import { isAbsolute, join } from "node:path";
import { execa } from "execa";
import { formatArgv, LullError, tailLines } from "@lull/shared";

const FIND_STDERR_LIMIT_BYTES = 256 * 1024;
/** find's complaint about an entry gone between listing its directory and reading it. */
const VANISHED = /: No such file or directory$/;

/** The sum find prints for `path`; undefined when find cannot be run here. */
async function sizeByFind(path: string, signal: AbortSignal | undefined): Promise<number | undefined> {
  cancelled(signal);
  // `./` keeps a relative path that starts with `-` from being read as an expression.
  const args = ["-P", isAbsolute(path) ? path : `./${path}`, "-type", "f", "-printf", "%s\\n"];
  const find = execa("find", args, {
    shell: false,
    reject: false,
    stdin: "ignore",
    buffer: { stdout: false },
    maxBuffer: { stderr: FIND_STDERR_LIMIT_BYTES },
    ...(signal ? { cancelSignal: signal } : {}),
  });
  let total = 0;
  let partial = "";
  find.stdout?.setEncoding("latin1").on("data", (chunk: string) => {
    const lines = (partial + chunk).split("\n");
    partial = lines.pop() ?? "";
    for (const line of lines) total += Number(line);
  });
  const r = await find;
  cancelled(signal);
  if ((r.cause as { code?: unknown } | undefined)?.code === "ENOENT" && r.exitCode === undefined) return undefined;
  const complaints = String(r.stderr).split("\n").filter(Boolean);
  // A missing read path measures 0, as a vanished file does.
  if (r.exitCode === 0 || (r.exitCode === 1 && complaints.length > 0 && complaints.every((l) => VANISHED.test(l)))) return total;
  const how = r.exitCode !== undefined ? `exited with code ${r.exitCode}` : `failed: ${r.shortMessage}`;
  throw new LullError("LULL_E_ARCHIVE_FAILED", `measuring ${path}: ${formatArgv("find", args)} ${how}: ${tailLines(complaints.join("\n"))}`);
}

/** lstat calls of one directory in flight at once. */
const CONCURRENT_LSTATS = 64;

function codeOf(err: unknown): unknown {
  return (err as { code?: unknown }).code;
}

function cancelled(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new LullError("LULL_E_CANCELLED", "measuring the archive: cancelled", { cause: signal.reason });
}

async function directorySize(path: string, signal: AbortSignal | undefined): Promise<number> {
  cancelled(signal);
  const entries = await readdir(path, { withFileTypes: true }).catch((err: unknown) => {
    if (codeOf(err) === "ENOENT") return [];
    throw err;
  });
  const files: string[] = [];
  let total = 0;
  for (const entry of entries) {
    const child = join(path, entry.name);
    if (entry.isDirectory()) total += await directorySize(child, signal);
    // A file system that gives no entry types: lstat tells (and recurses into directories).
    else if (entry.isFile() || !(entry.isSymbolicLink() || entry.isFIFO() || entry.isSocket() || entry.isBlockDevice() || entry.isCharacterDevice())) files.push(child);
  }
  for (let at = 0; at < files.length; at += CONCURRENT_LSTATS) {
    cancelled(signal);
    const sizes = await Promise.all(files.slice(at, at + CONCURRENT_LSTATS).map((f) => sizeOf(f, signal)));
    for (const size of sizes) total += size;
  }
  return total;
}

async function sizeOf(path: string, signal: AbortSignal | undefined): Promise<number> {
  cancelled(signal);
  const st = await lstat(path).catch((err: unknown) => {
    if (codeOf(err) === "ENOENT") return undefined;
    throw err;
  });
  if (!st) return 0;
  if (st.isFile()) return st.size;
  return st.isDirectory() ? directorySize(path, signal) : 0;
}

/** Sum of regular file sizes under every path, in bytes. */
export async function measureTrees(paths: readonly string[], signal?: AbortSignal): Promise<number> {
  let total = 0;
  for (const path of paths) total += (await sizeByFind(path, signal)) ?? (await sizeOf(path, signal));
  return total;
}
