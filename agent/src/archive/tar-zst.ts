// One `.tar.zst` per job, written by the real `tar` and `zstd`: tar's stdout is piped
// through a byte counter (progress) into zstd's stdin, and zstd writes straight into
//   <archiveDir>/<prefix>partial-<jobId>.tar.zst
// which is fsynced and renamed to <archiveDir>/<guestId>/<guestId>-<yyyymmddThhmmssZ>-<jobId>.tar.zst
// (both directories fsynced). Any failure or abort kills both processes and removes the partial file.
import { createReadStream, createWriteStream } from "node:fs";
import { once } from "node:events";
import { mkdir, open, readdir, realpath, rename, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { Transform, Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { execa } from "execa";
import { LullError, validate, type Logger } from "@lull/shared";
import { formatArgv, FORCE_KILL_AFTER_MS, tailLines } from "@lull/shared";
import { classifyFailure, isNoSpace, throwIfCancelled } from "../storage/failure.js";
import { hashingStream, TarManifestCounter, type ArchiveManifest } from "./manifest.js";
import { tarCreateArgs, type TarVolume } from "./tar-args.js";

/** Upper bound of one archive run; the job's signal cancels it sooner. */
export const ARCHIVE_TIMEOUT_MS = 24 * 60 * 60 * 1000;
const STDERR_LIMIT_BYTES = 1024 * 1024;
/** GNU tar's exit status for "some files differ" (changed or vanished while read). */
const TAR_EXIT_FILES_DIFFER = 1;

export interface ArchiveRequest {
  archiveDir: string;
  prefix: string;
  guestId: string;
  jobId: string;
  zstdLevel: number;
  /** zstd worker threads; 0 (the default) is one per core (`-T0`). */
  zstdThreads?: number | undefined;
  volumes: readonly { name: string; readPath: string }[];
  /** The moment the data is from (the snapshot's creation time); names the archive. */
  takenAt: number;
  /** Read paths are live (mode NONE): tolerate files that change or vanish. */
  live: boolean;
  signal: AbortSignal;
  /** Uncompressed tar bytes so far; may exceed the measured total (headers, padding). */
  /** Told the bytes read so far; a returned promise holds the archive until it settles (backpressure). */
  onBytes?: (bytesRead: number) => void | Promise<void>;
  timeoutMs?: number;
  log?: Logger;
}

export interface ArchiveResult {
  archivePath: string;
  archiveBytes: number;
  /** SHA-256 (hex) of the compressed archive file, hashed as it was written. */
  sha256: string;
  /** Regular files and their bytes, counted from the tar stream as it was written. */
  manifest: ArchiveManifest;
}

/** argv of zstd compressing stdin to stdout at `level` with `threads` workers (0: one per core). */
export function zstdCreateArgs(level: number, threads: number): string[] {
  if (!Number.isInteger(level) || level < 1 || level > 19) throw new LullError("LULL_E_CONFIG_INVALID", `zstdLevel ${level} is not a whole number from 1 to 19`);
  if (!Number.isInteger(threads) || threads < 0 || threads > 256) throw new LullError("LULL_E_CONFIG_INVALID", `zstdThreads ${threads} is not a whole number from 0 to 256`);
  return ["-q", `-${level}`, `-T${threads}`, "-c"];
}

/** `20261122T105827Z` */
export function utcStamp(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z").replace(/[-:]/g, "");
}

export function partialArchivePath(archiveDir: string, prefix: string, jobId: string): string {
  return join(archiveDir, `${prefix}partial-${jobId}.tar.zst`);
}

export function finalArchivePath(archiveDir: string, guestId: string, takenAt: number, jobId: string): string {
  return join(archiveDir, guestId, `${guestId}-${utcStamp(takenAt)}-${jobId}.tar.zst`);
}

/** Whether `name` is the file name finalArchivePath gives a job's archive (taken at any time). */
export function isFinalArchiveName(name: string, guestId: string, jobId: string): boolean {
  const head = `${guestId}-`;
  const tail = `-${jobId}.tar.zst`;
  return name.startsWith(head) && name.endsWith(tail) && /^\d{8}T\d{6}Z$/.test(name.slice(head.length, name.length - tail.length));
}

/** fsync a file or directory by path (flushes the inode, whichever descriptor wrote it). */
async function fsyncPath(path: string): Promise<void> {
  const handle = await open(path, "r");
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** The parts of an execa result a failure message needs. */
interface ProcessOutcome {
  exitCode?: number | undefined;
  signal?: string | undefined;
  timedOut: boolean;
  stderr?: unknown;
  shortMessage?: string | undefined;
}

function processFailure(name: string, argv: string, result: ProcessOutcome, acceptable: readonly number[]): string | undefined {
  if (result.exitCode !== undefined && acceptable.includes(result.exitCode)) return undefined;
  const stderr = tailLines(typeof result.stderr === "string" ? result.stderr : "");
  const how = result.timedOut
    ? "timed out"
    : result.exitCode !== undefined
      ? `exited with code ${result.exitCode}`
      : result.signal !== undefined
        ? `was killed by ${result.signal}`
        : `failed: ${result.shortMessage}`;
  return `${name} (${argv}) ${how}${stderr ? `: ${stderr}` : ""}`;
}

/** Runs tar | counter | zstd > file until all four settle; the first failure stops the rest. */
async function runPipeline(request: ArchiveRequest, tarArgs: string[], outPath: string): Promise<{ sha256: string; manifest: ArchiveManifest }> {
  const stop = new AbortController();
  const onJobAbort = () => stop.abort(request.signal.reason);
  request.signal.addEventListener("abort", onJobAbort, { once: true });
  const common = {
    shell: false,
    reject: false,
    cancelSignal: stop.signal,
    forceKillAfterDelay: FORCE_KILL_AFTER_MS,
    timeout: request.timeoutMs ?? ARCHIVE_TIMEOUT_MS,
    stderr: "pipe",
    maxBuffer: { stderr: STDERR_LIMIT_BYTES },
  } as const;
  const zstdArgs = zstdCreateArgs(request.zstdLevel, request.zstdThreads ?? 0);
  // zstd writes the archive file itself (its stdout is the file): the compressed bytes never pass
  // through this process. Only tar's output does, for the byte count and the backpressure above.
  // An open file stream: execa hands its descriptor to zstd as stdout.
  const file = createWriteStream(outPath, { flags: "w", mode: 0o640 });
  await once(file, "open");
  const tar = execa("tar", tarArgs, { ...common, stdin: "ignore", stdout: "pipe", buffer: { stdout: false } });
  const zstd = execa("zstd", zstdArgs, { ...common, stdin: "pipe", stdout: file });
  let bytesRead = 0;
  const members = new TarManifestCounter();
  const counter = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      bytesRead += chunk.length;
      members.update(chunk);
      let held: void | Promise<void>;
      try {
        held = request.onBytes?.(bytesRead);
      } catch (err) {
        done(err as Error); // a failing progress hook stops the archive instead of crashing the process
        return;
      }
      if (held instanceof Promise) held.then(() => done(null, chunk), (err: unknown) => done(err as Error));
      else done(null, chunk);
    },
  });
  let firstError: unknown;
  const fail = (err: unknown) => {
    firstError ??= err;
    stop.abort(err);
  };
  const steps = [
    pipeline(tar.stdout, counter, zstd.stdin),
    tar.then((r) => {
      const why = processFailure("tar", formatArgv("tar", tarArgs), r, request.live ? [0, TAR_EXIT_FILES_DIFFER] : [0]);
      if (why !== undefined) throw new LullError("LULL_E_ARCHIVE_FAILED", why, { cause: r });
    }),
    zstd.then((r) => {
      const why = processFailure("zstd", formatArgv("zstd", zstdArgs), r, [0]);
      // zstd writes the file itself: a full file system shows in its stderr.
      if (why !== undefined) throw new LullError(isNoSpace(why) ? "LULL_E_NO_SPACE" : "LULL_E_ARCHIVE_FAILED", why, { cause: r });
    }),
  ];
  steps.forEach((step) => step.catch(fail));
  const settled = await Promise.allSettled(steps);
  await new Promise<void>((resolve) => file.close(() => resolve()));
  request.signal.removeEventListener("abort", onJobAbort);
  if (request.signal.aborted) throw new LullError("LULL_E_CANCELLED", "archive cancelled", { cause: request.signal.reason });
  // A process that died first (zstd on a full file system) breaks the pipe into it: the pipe's EPIPE
  // may settle before the process's exit is read. The process's own failure says what happened.
  const processFailures = settled.slice(1).flatMap((r) => (r.status === "rejected" ? [r.reason as unknown] : []));
  const noSpace = processFailures.find((e) => e instanceof LullError && e.code === "LULL_E_NO_SPACE");
  if (noSpace !== undefined) throw noSpace;
  if (isBrokenPipe(firstError) && processFailures.length > 0) throw processFailures[0];
  if (firstError !== undefined) throw firstError;
  // zstd wrote the file itself; its SHA-256 is taken right after zstd closed it, from the pages just
  // written (still in the page cache), so it is the hash of what was written, not of a later read.
  const hash = hashingStream();
  await pipeline(createReadStream(outPath), hash.stream, new Writable({ write: (_c, _e, done) => done() }));
  return { sha256: hash.digest(), manifest: members.result() };
}

/** Writes the job's archive; returns where it is and its size. Throws ARCHIVE_FAILED, NO_SPACE or CANCELLED. */
export async function writeArchive(request: ArchiveRequest): Promise<ArchiveResult> {
  validate.jobId(request.jobId);
  validate.guestId(request.guestId);
  throwIfCancelled(request.signal, `archiving guest ${request.guestId}`);
  const partial = partialArchivePath(request.archiveDir, request.prefix, request.jobId);
  const final = finalArchivePath(request.archiveDir, request.guestId, request.takenAt, request.jobId);
  const context = `archiving guest ${request.guestId}`;
  let renamed = false;
  try {
    const volumes: TarVolume[] = [];
    for (const v of request.volumes) {
      const realPath = await realpath(v.readPath);
      // tar stores a block or character device as a device node: the archive would hold no data.
      const st = await stat(realPath);
      if (st.isBlockDevice() || st.isCharacterDevice()) {
        throw new LullError(
          "LULL_E_CONFIG_INVALID",
          `volume ${v.name}: ${v.readPath} is a ${st.isBlockDevice() ? "block" : "character"} device; tar would store a device node, not its data — a volume must be a directory (mount the device's filesystem, or back the guest up with the vzdump engine)`,
        );
      }
      volumes.push({ name: v.name, realPath });
    }
    const tarArgs = tarCreateArgs(volumes, { live: request.live });
    await mkdir(request.archiveDir, { recursive: true, mode: 0o750 });
    const { sha256, manifest } = await runPipeline(request, tarArgs, partial);
    await fsyncPath(partial);
    await mkdir(join(request.archiveDir, request.guestId), { recursive: true, mode: 0o750 });
    await rename(partial, final);
    renamed = true;
    await fsyncPath(join(request.archiveDir, request.guestId));
    await fsyncPath(request.archiveDir);
    const archiveBytes = (await stat(final)).size;
    request.log?.info({ jobId: request.jobId, archivePath: final, archiveBytes, sha256, ...manifest }, "archive written");
    return { archivePath: final, archiveBytes, sha256, manifest };
  } catch (err) {
    await rm(partial, { force: true }).catch(() => undefined);
    if (renamed) await rm(final, { force: true }).catch(() => undefined);
    throw classifyFailure(err, "LULL_E_ARCHIVE_FAILED", context, request.signal);
  }
}

/** Removes `<prefix>partial-*` files a crashed run left in archiveDir (optionally only one job's). */
export async function sweepPartialArchives(archiveDir: string, prefix: string, jobId?: string): Promise<string[]> {
  const entries = await readdir(archiveDir).catch((err: unknown) => {
    if ((err as { code?: unknown }).code === "ENOENT") return [] as string[];
    throw err;
  });
  const start = `${prefix}partial-${jobId ?? ""}`;
  const removed: string[] = [];
  for (const name of entries.filter((n) => n.startsWith(start))) {
    const path = join(archiveDir, name);
    await rm(path, { force: true });
    removed.push(path);
  }
  return removed;
}

/** A write into a pipe whose reader is gone. */
function isBrokenPipe(err: unknown): boolean {
  const code = (err as { code?: unknown } | undefined)?.code;
  return code === "EPIPE" || code === "ERR_STREAM_PREMATURE_CLOSE" || code === "ERR_STREAM_DESTROYED";
}
