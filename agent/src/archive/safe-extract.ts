// The one safe way a native archive is brought back (restore, and verification replicas):
//
//   1. check: the file is read once — hashed (SHA-256) and decompressed by `zstd -d` into the tar
//      header reader — and every member is judged before anything is written: an absolute path,
//      a `..` component, a device node or fifo, an unknown member type, a member below a symlink
//      of the archive (the symlink escape: `a -> /etc`, then `a/passwd`), a member replacing a
//      symlink, or a hard link whose target is absolute, has `..` or lies below a symlink makes the
//      archive hostile: LULL_E_ARCHIVE_HOSTILE naming the member, nothing written. The hash and the
//      manifest (regular files, their bytes) must equal what the catalog recorded while writing,
//      else LULL_E_ARCHIVE_CORRUPT (a tampered or damaged file).
//   2. extract: the file is read again, hashed again, and fed to GNU tar (`-x --zstd -f -`) in an
//      empty directory; a second hash that differs from the first (the file changed between the
//      passes) fails the extraction and removes what tar wrote.
//
// Symlinks themselves are restored as stored (an absolute target is normal in a volume); since no
// member may pass through one and the target directory starts empty, tar never writes through one.
// A file whose hash differs from the catalog's is told as changed or damaged, before anything else
// found in it. Every process started carries `env` (the verifier's replica mark).
import { createReadStream } from "node:fs";
import { readdir, rm, stat } from "node:fs/promises";
import { createHash } from "node:crypto";
import { Transform, Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { execa } from "execa";
import { LullError } from "@lull/shared";
import { TarHeaderReader, type TarMember } from "./tar-headers.js";
import type { ArchiveManifest } from "./manifest.js";

export interface ArchiveExpectation {
  /** The SHA-256 recorded while writing; unset: not compared. */
  sha256?: string | undefined;
  /** The manifest recorded while writing; unset: not compared. */
  manifest?: ArchiveManifest | undefined;
}

export interface CheckedArchive {
  sha256: string;
  manifest: ArchiveManifest;
  /** Every member (files, directories, links). */
  members: number;
  /** Top-level names (the archive's volumes). */
  volumes: string[];
  /** The compressed file's size. */
  archiveBytes: number;
}

export interface SafeExtractOptions {
  expect: ArchiveExpectation;
  signal: AbortSignal;
  /** Added to every started process's environment. */
  env?: Readonly<Record<string, string>> | undefined;
  /** Compressed bytes read so far in the current pass. */
  onBytes?: ((pass: "check" | "extract", bytes: number, total: number) => void) | undefined;
  /** Restore owners as stored (root); default: when running as root. */
  sameOwner?: boolean | undefined;
  timeoutMs?: number | undefined;
  /** The programs run (tests wrap them); default `zstd` and `tar` from PATH. */
  tools?: { zstd?: string; tar?: string } | undefined;
  /** Extract only the top-level directory `only` (a volume), its contents straight into the target. */
  only?: string | undefined;
  /** Pass 1's result for this file (a restore extracting volume after volume checks once); pass 1 is skipped. */
  checked?: CheckedArchive | undefined;
  /** Told the result of pass 1 before pass 2 begins. */
  onChecked?: ((checked: CheckedArchive) => Promise<void> | void) | undefined;
}

const DEFAULT_TIMEOUT_MS = 24 * 3600_000;
const STDERR_LIMIT = 64 * 1024;

/** Why a member makes the archive hostile, or undefined when it may be extracted. `symlinks` holds the archive's symlinks so far (updated). */
export function memberProblem(m: TarMember, symlinks: Set<string>): string | undefined {
  const name = m.name;
  if (name === "") return "a member without a name";
  const bad = pathProblem(name, symlinks);
  if (bad) return bad;
  const path = normalized(name);
  switch (m.type) {
    case "char-device":
    case "block-device":
      return `${name} is a device node`;
    case "fifo":
      return `${name} is a fifo`;
    case "other":
      return `${name} has member type '${m.typeflag === "\0" ? "NUL" : m.typeflag}', which Lull's archives never contain`;
    case "hardlink": {
      if (m.linkname === "") return `hard link ${name} has no target`;
      const badLink = pathProblem(m.linkname, symlinks);
      if (badLink) return `hard link ${name}: its target ${badLink}`;
      break;
    }
    case "symlink":
      symlinks.add(path);
      return undefined;
    default:
      break;
  }
  if (path !== "" && symlinks.has(path)) return `${name} would replace the symlink ${path} of the archive`;
  return undefined;
}

function normalized(name: string): string {
  return name
    .split("/")
    .filter((p) => p !== "" && p !== ".")
    .join("/");
}

function pathProblem(name: string, symlinks: ReadonlySet<string>): string | undefined {
  if (name.includes("\0")) return `${JSON.stringify(name)} holds a NUL byte`;
  if (name.startsWith("/")) return `${name} is an absolute path`;
  const parts = name.split("/").filter((p) => p !== "" && p !== ".");
  if (parts.includes("..")) return `${name} has a parent-directory (..) component`;
  for (let i = 1; i < parts.length; i++) {
    const above = parts.slice(0, i).join("/");
    if (symlinks.has(above)) return `${name} lies below the symlink ${above} of the archive (it would be written through it)`;
  }
  return undefined;
}

function tail(text: unknown): string {
  return String(text ?? "")
    .trim()
    .split("\n")
    .slice(-3)
    .join(" ");
}

async function sizeOf(path: string): Promise<number> {
  try {
    return (await stat(path)).size;
  } catch (err) {
    throw new LullError("LULL_E_ARCHIVE_CORRUPT", `archive ${path} cannot be read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

/** Reads the file through a hash into `sink`, counting bytes; resolves with the hex digest. */
async function readThrough(path: string, sink: NodeJS.WritableStream, onBytes: (n: number) => void, signal: AbortSignal): Promise<string> {
  const hash = createHash("sha256");
  let n = 0;
  const counter = new Transform({
    transform(chunk: Buffer, _e, done) {
      hash.update(chunk);
      onBytes((n += chunk.length));
      done(null, chunk);
    },
  });
  await pipeline(createReadStream(path), counter, sink, { signal });
  return hash.digest("hex");
}

function cancelled(signal: AbortSignal): LullError {
  const reason = signal.reason as unknown;
  return reason instanceof LullError ? reason : new LullError("LULL_E_CANCELLED", "restore cancelled", { cause: reason });
}

/** Pass 1: hashes and lists the archive, judges every member, compares hash and manifest. Writes nothing. */
export async function checkArchive(path: string, options: SafeExtractOptions): Promise<CheckedArchive> {
  const total = await sizeOf(path);
  const stop = new AbortController();
  const onAbort = () => stop.abort(options.signal.reason);
  options.signal.addEventListener("abort", onAbort, { once: true });
  const symlinks = new Set<string>();
  const volumes = new Set<string>();
  let members = 0;
  let fileCount = 0;
  let totalBytes = 0;
  let hostile: string | undefined;
  const reader = new TarHeaderReader((m) => {
    if (hostile) return;
    members += 1;
    const problem = memberProblem(m, symlinks);
    if (problem) {
      // Read on to the end all the same: a changed or damaged file (its hash) is told as such, not
      // as hostile — a flipped byte can decompress into garbage headers before zstd's checksum fails.
      hostile = problem;
      return;
    }
    const top = normalized(m.name).split("/")[0];
    if (top) volumes.add(top);
    if (m.type === "file") {
      fileCount += 1;
      totalBytes += m.size;
    }
  });
  const zstd = execa(options.tools?.zstd ?? "zstd", ["-d", "-c", "-q"], {
    stdin: "pipe",
    stdout: "pipe",
    stderr: "pipe",
    buffer: { stdout: false },
    maxBuffer: { stderr: STDERR_LIMIT },
    reject: false,
    cancelSignal: stop.signal,
    timeout: options.timeoutMs ?? DEFAULT_TIMEOUT_MS,
    ...(options.env ? { env: { ...options.env } } : {}),
  });
  let sha256 = "";
  try {
    const reading = readThrough(path, zstd.stdin!, (n) => options.onBytes?.("check", n, total), stop.signal).then((d) => (sha256 = d));
    const listing = pipeline(zstd.stdout, new Writable({ write: (chunk: Buffer, _e, done) => (reader.update(chunk), done()) }), { signal: stop.signal });
    const [read, list, exit] = await Promise.allSettled([reading, listing, zstd]);
    if (options.signal.aborted) throw cancelled(options.signal);
    if (read.status === "fulfilled" && options.expect.sha256 && options.expect.sha256 !== sha256) {
      throw new LullError("LULL_E_ARCHIVE_CORRUPT", `archive ${path} has SHA-256 ${sha256}, not the ${options.expect.sha256} recorded while it was written: it was changed or damaged; nothing was written`);
    }
    const result = exit.status === "fulfilled" ? exit.value : undefined;
    if (!result || result.exitCode !== 0) {
      throw new LullError("LULL_E_ARCHIVE_CORRUPT", `archive ${path} does not decompress (it was damaged or changed; nothing was written): zstd -d ${result?.exitCode !== undefined ? `exited ${result.exitCode}` : "failed"}${result ? `: ${tail(result.stderr)}` : ""}`);
    }
    if (read.status === "rejected") throw new LullError("LULL_E_ARCHIVE_CORRUPT", `archive ${path} cannot be read: ${(read.reason as Error).message}`);
    if (list.status === "rejected") throw new LullError("LULL_E_ARCHIVE_CORRUPT", `archive ${path} cannot be listed: ${(list.reason as Error).message}`);
    if (hostile) throw new LullError("LULL_E_ARCHIVE_HOSTILE", `archive ${path} is refused: ${hostile}; nothing was written`);
  } finally {
    options.signal.removeEventListener("abort", onAbort);
    stop.abort();
  }
  if (!reader.sawEnd) throw new LullError("LULL_E_ARCHIVE_CORRUPT", `archive ${path} is truncated: its tar stream has no end-of-archive blocks`);
  const expected = options.expect;
  const manifest = { fileCount, totalBytes };
  if (expected.manifest && (expected.manifest.fileCount !== fileCount || expected.manifest.totalBytes !== totalBytes)) {
    throw new LullError(
      "LULL_E_ARCHIVE_CORRUPT",
      `archive ${path} holds ${fileCount} files, ${totalBytes} bytes; the manifest recorded ${expected.manifest.fileCount} files, ${expected.manifest.totalBytes} bytes; nothing was written`,
    );
  }
  return { sha256, manifest, members, volumes: [...volumes].sort(), archiveBytes: total };
}

/** The argv of the extracting tar (stdin is the compressed archive). */
export function extractTarArgs(target: string, sameOwner: boolean): string[] {
  return [
    "-x",
    "--zstd",
    "-f",
    "-",
    "-C",
    target,
    "--numeric-owner",
    "--preserve-permissions",
    sameOwner ? "--same-owner" : "--no-same-owner",
    "--acls",
    "--xattrs",
    "--xattrs-include=user.*",
    "--xattrs-include=security.capability",
    "--delay-directory-restore",
    "--no-overwrite-dir",
  ];
}

async function assertEmptyDir(target: string): Promise<void> {
  const entries = await readdir(target).catch((err: NodeJS.ErrnoException) => {
    throw new LullError("LULL_E_INVALID_ARGUMENT", `extraction target ${target} is not a readable directory (${err.code ?? err.message})`);
  });
  if (entries.length > 0) throw new LullError("LULL_E_INTERNAL", `extraction target ${target} is not empty`);
}

/**
 * Checks the archive (pass 1), then extracts it into the empty directory `target` (pass 2).
 * On any failure after pass 1 the target's contents are removed again (the directory stays).
 */
export async function safeExtract(path: string, target: string, options: SafeExtractOptions): Promise<CheckedArchive> {
  await assertEmptyDir(target);
  const checked = options.checked ?? (await checkArchive(path, options));
  if (!options.checked) await options.onChecked?.(checked);
  options.signal.throwIfAborted();
  if (options.only !== undefined && !checked.volumes.includes(options.only)) {
    throw new LullError("LULL_E_RESTORE_FAILED", `archive ${path} holds no volume ${options.only} (it holds ${checked.volumes.join(", ") || "nothing"})`);
  }
  const sameOwner = options.sameOwner ?? process.geteuid?.() === 0;
  const args = [...extractTarArgs(target, sameOwner), ...(options.only !== undefined ? ["--strip-components=1", "--", `${options.only}/`] : [])];
  const stop = new AbortController();
  const onAbort = () => stop.abort(options.signal.reason);
  options.signal.addEventListener("abort", onAbort, { once: true });
  const tar = execa(options.tools?.tar ?? "tar", args, {
      stdin: "pipe",
      stdout: "ignore",
      stderr: "pipe",
      maxBuffer: { stderr: STDERR_LIMIT },
      reject: false,
      cancelSignal: stop.signal,
      forceKillAfterDelay: 5_000,
      timeout: options.timeoutMs ?? DEFAULT_TIMEOUT_MS,
      ...(options.env ? { env: { ...options.env } } : {}),
    });
  try {
    const [read, exit] = await Promise.allSettled([readThrough(path, tar.stdin, (n) => options.onBytes?.("extract", n, checked.archiveBytes), stop.signal), tar]);
    if (options.signal.aborted) throw cancelled(options.signal);
    const result = exit.status === "fulfilled" ? exit.value : undefined;
    if (!result || result.exitCode !== 0) {
      throw new LullError("LULL_E_RESTORE_FAILED", `tar -x into ${target} ${result?.exitCode !== undefined ? `exited ${result.exitCode}` : "failed"}${result ? `: ${tail(result.stderr)}` : ""}`);
    }
    if (read.status === "rejected") throw new LullError("LULL_E_RESTORE_FAILED", `reading ${path} for extraction failed: ${(read.reason as Error).message}`);
    if (read.value !== checked.sha256) {
      throw new LullError("LULL_E_ARCHIVE_CORRUPT", `archive ${path} changed while it was restored (SHA-256 ${read.value} at extraction, ${checked.sha256} when checked); what was extracted is removed`);
    }
    return checked;
  } catch (err) {
    await emptyDir(target);
    throw err;
  } finally {
    options.signal.removeEventListener("abort", onAbort);
    stop.abort();
    await tar.catch(() => undefined);
  }
}

/** Removes every entry of `dir` (never following a symlink), keeping `dir`. */
export async function emptyDir(dir: string, keep: ReadonlySet<string> = new Set()): Promise<void> {
  const entries = await readdir(dir).catch(() => [] as string[]);
  for (const e of entries) if (!keep.has(e)) await rm(`${dir}/${e}`, { recursive: true, force: true });
}
