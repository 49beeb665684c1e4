// One `.tar.zst` per job, written by the real `tar` and `zstd`: tar's stdout is zstd's stdin (a
// socket pair between the two processes; this process closes its end and never reads the stream),
// and zstd writes straight into
//   <archiveDir>/<prefix>partial-<jobId>.tar.zst
// which is fsynced and renamed to <archiveDir>/<guestId>/<guestId>-<yyyymmddThhmmssZ>-<jobId>.tar.zst
// (both directories fsynced). Beside the data: tar lists every member on its stderr (the manifest,
// manifest.ts), progress is the bytes tar has written, read from /proc, and a held report stops tar
// (tar-progress.ts); the file's SHA-256 is read from the page cache just behind zstd's writes
// (follow-hash.ts). Any failure, abort or timeout kills both processes and removes the partial
// file; both run under `setpriv --pdeathsig KILL` (util-linux, where it is on PATH), so a killed
// agent leaves neither running.
import { createWriteStream, type WriteStream } from "node:fs";
import { once } from "node:events";
import { mkdir, open, readdir, realpath, rename, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { execa } from "execa";
import { LullError, validate, type Logger } from "@lull/shared";
import { formatArgv, FORCE_KILL_AFTER_MS, tailLines } from "@lull/shared";
import { classifyFailure, isNoSpace, throwIfCancelled } from "../storage/failure.js";
import { hashGrowingFile } from "./follow-hash.js";
import { TarListingCounter, type ArchiveManifest } from "./manifest.js";
import { tarCreateArgs, type TarVolume } from "./tar-args.js";
import { heldUntil, watchTarProgress } from "./tar-progress.js";

/** Upper bound of one archive run; the job's signal cancels it sooner. */
export const ARCHIVE_TIMEOUT_MS = 24 * 60 * 60 * 1000;
const STDERR_LIMIT_BYTES = 1024 * 1024;
/** GNU tar's exit status for "some files differ" (changed or vanished while read). */
const TAR_EXIT_FILES_DIFFER = 1;
/** tar lists every member on its stderr (the manifest, manifest.ts) and ends with the stream's size. */
const TAR_LISTING_OPTIONS = ["--verbose", "--verbose", "--totals"];

/**
 * `file args` run by util-linux `setpriv`, which has the kernel kill it (SIGKILL) when this process
 * dies: nothing of this process is in the data path any more, so a killed agent would otherwise
 * leave tar and zstd writing the partial archive from the snapshot. Without setpriv (not on PATH)
 * they run as they are: tar then dies at its next listing line (EPIPE on stderr), zstd when tar did.
 */
function dyingWithParent(file: string, args: readonly string[], setpriv: boolean): [string, string[]] {
  return setpriv ? ["setpriv", ["--pdeathsig", "KILL", "--", file, ...args]] : [file, [...args]];
}

/**
 * Whether `setpriv` can be run, looked up once per PATH: every process this agent starts is a fork
 * of the whole agent (milliseconds each, with its event loop stopped meanwhile), and the answer
 * only changes with PATH (tests run the agent with a PATH of recorded programs). A failed lookup
 * is not kept, so a setpriv installed later is found.
 */
const setprivByPath = new Map<string, Promise<boolean>>();
function hasSetpriv(): Promise<boolean> {
  const path = process.env.PATH ?? "";
  let found = setprivByPath.get(path);
  if (!found) {
    found = execa("setpriv", ["--version"], { shell: false, reject: false, stdin: "ignore", timeout: 10_000 }).then((r) => r.exitCode === 0);
    setprivByPath.set(path, found);
    void found.then((yes) => {
      if (!yes) setprivByPath.delete(path);
    });
  }
  return found;
}

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
  /**
   * Told the uncompressed tar bytes written so far (0 before tar starts, about every 250 ms while it
   * runs, the whole stream at the end); may exceed the measured total (headers, padding). A returned
   * promise holds the archive until it settles (tar is stopped meanwhile).
   */
  onBytes?: (bytesRead: number) => void | Promise<void>;
  timeoutMs?: number;
  log?: Logger;
}

export interface ArchiveResult {
  archivePath: string;
  archiveBytes: number;
  /** SHA-256 (hex) of the compressed archive file, read from the page cache just behind zstd's writes. */
  sha256: string;
  /** Regular files and their bytes, counted from tar's listing of the members it wrote. */
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
  shortMessage?: string | undefined;
}

function processFailure(name: string, argv: string, result: ProcessOutcome, acceptable: readonly number[], messages: string): string | undefined {
  if (result.exitCode !== undefined && acceptable.includes(result.exitCode)) return undefined;
  const stderr = tailLines(messages);
  const how =
    result.exitCode !== undefined
      ? `exited with code ${result.exitCode}`
      : result.signal !== undefined
        ? `was killed by ${result.signal}`
        : `failed: ${result.shortMessage}`;
  return `${name} (${argv}) ${how}${stderr ? `: ${stderr}` : ""}`;
}

/** The archive run's stop: the first failure (or the job's abort) is kept and stops everything. */
interface RunStop {
  readonly signal: AbortSignal;
  fail(err: unknown): void;
  readonly firstError: unknown;
}

function runStop(jobSignal: AbortSignal, timeoutMs: number): RunStop & { dispose(): void } {
  const stop = new AbortController();
  let firstError: unknown;
  const onJobAbort = () => stop.abort(jobSignal.reason);
  jobSignal.addEventListener("abort", onJobAbort, { once: true });
  const fail = (err: unknown) => {
    firstError ??= err;
    stop.abort(err);
  };
  const deadline = setTimeout(() => fail(new LullError("LULL_E_ARCHIVE_FAILED", `tar | zstd did not finish within ${timeoutMs} ms`)), timeoutMs);
  return {
    signal: stop.signal,
    fail,
    get firstError() {
      return firstError;
    },
    dispose() {
      clearTimeout(deadline);
      jobSignal.removeEventListener("abort", onJobAbort);
    },
  };
}

/** Runs `tar | zstd > file` until both settle; the first failure stops the other. */
async function runPipeline(request: ArchiveRequest, tarArgs: string[], outPath: string): Promise<{ sha256: string; manifest: ArchiveManifest }> {
  // The first report (0 bytes) comes before tar starts: a paused run holds its archive with no process running.
  await holdArchive(request.onBytes?.(0), request.signal);
  throwIfCancelled(request.signal, `archiving guest ${request.guestId}`);
  const zstdArgs = zstdCreateArgs(request.zstdLevel, request.zstdThreads ?? 0);
  const listedTarArgs = [...TAR_LISTING_OPTIONS, ...tarArgs];
  const file = createWriteStream(outPath, { flags: "w", mode: 0o640 });
  await once(file, "open");
  const setpriv = await hasSetpriv();
  if (!setpriv) request.log?.warn({ jobId: request.jobId }, "setpriv not found: a killed agent would leave tar running until its next member");
  const stop = runStop(request.signal, request.timeoutMs ?? ARCHIVE_TIMEOUT_MS);
  try {
    const { listing, sha256 } = await runProcesses(request, { tar: listedTarArgs, zstd: zstdArgs, setpriv }, { file, path: outPath }, stop);
    return { sha256, manifest: listing.result() };
  } finally {
    stop.dispose();
    await new Promise<void>((resolve) => file.close(() => resolve()));
  }
}

/** tar and zstd, from start to the last report; returns tar's listing and the file's SHA-256, throws the run's failure. */
async function runProcesses(
  request: ArchiveRequest,
  argv: { tar: string[]; zstd: string[]; setpriv: boolean },
  out: { file: WriteStream; path: string },
  stop: RunStop,
): Promise<{ listing: TarListingCounter; sha256: string }> {
  const { tar: tarArgs, zstd: zstdArgs } = argv;
  const common = { shell: false, reject: false, cancelSignal: stop.signal, forceKillAfterDelay: FORCE_KILL_AFTER_MS, stderr: "pipe" } as const;
  // zstd writes the archive file itself (its stdout is the file), and tar's stdout is zstd's stdin:
  // neither the tar stream nor the compressed bytes pass through this process.
  const zstd = execa(...dyingWithParent("zstd", zstdArgs, argv.setpriv), { ...common, stdin: "pipe", stdout: out.file, maxBuffer: { stderr: STDERR_LIMIT_BYTES } });
  const tar = execa(...dyingWithParent("tar", tarArgs, argv.setpriv), { ...common, stdin: "ignore", stdout: zstd.stdin, buffer: { stderr: false } });
  // tar holds the socket's only writing end: zstd sees the end of the stream when tar exits, and an
  // early death of zstd gives tar EPIPE. (execa reports this early close of zstd's stdin; the exit code decides.)
  zstd.stdin.destroy();
  // The file's SHA-256, read from the page cache just behind zstd's writes (follow-hash.ts).
  const hashing = hashGrowingFile(out.path, zstd, stop.signal);
  const listing = new TarListingCounter();
  tar.stderr.on("data", (chunk: Buffer) => listing.update(chunk));
  const watch = request.onBytes ? watchTarProgress({ process: tar, onBytes: request.onBytes, signal: stop.signal, onError: stop.fail }) : undefined;
  const tarStep = tar.then((r) => {
    listing.end();
    const why = processFailure("tar", formatArgv("tar", tarArgs), r, request.live ? [0, TAR_EXIT_FILES_DIFFER] : [0], listing.messages());
    if (why !== undefined) throw new LullError("LULL_E_ARCHIVE_FAILED", why, { cause: { brokenPipe: r.signal === "SIGPIPE" || /Broken pipe/.test(why) } });
  });
  const zstdStep = zstd.then((r) => {
    const why = processFailure("zstd", formatArgv("zstd", zstdArgs), r, [0], typeof r.stderr === "string" ? r.stderr : "");
    // zstd writes the file itself: a full file system shows in its stderr.
    if (why !== undefined) throw new LullError(isNoSpace(why) ? "LULL_E_NO_SPACE" : "LULL_E_ARCHIVE_FAILED", why, { cause: r });
  });
  const steps = [tarStep, zstdStep];
  steps.forEach((step) => step.catch(stop.fail));
  const [tarOutcome, zstdOutcome] = await Promise.allSettled(steps);
  const sha256 = await hashing.catch((err: unknown) => void stop.fail(err));
  await watch?.stop();
  // The last report: the whole stream (tar's `--totals`); a paused run holds the finished archive here.
  if (stop.firstError === undefined && listing.bytesWritten !== undefined) {
    await holdArchive(request.onBytes?.(listing.bytesWritten), stop.signal).catch(stop.fail);
  }
  if (request.signal.aborted) throw new LullError("LULL_E_CANCELLED", "archive cancelled", { cause: request.signal.reason });
  // zstd dying first (a full file system) breaks tar's pipe: zstd's own failure says what happened.
  const tarFailure = tarOutcome?.status === "rejected" ? (tarOutcome.reason as LullError) : undefined;
  const zstdFailure = zstdOutcome?.status === "rejected" ? (zstdOutcome.reason as LullError) : undefined;
  if (zstdFailure?.code === "LULL_E_NO_SPACE") throw zstdFailure;
  if (zstdFailure !== undefined && (tarFailure?.cause as { brokenPipe?: boolean } | undefined)?.brokenPipe) throw zstdFailure;
  if (stop.firstError !== undefined) throw stop.firstError;
  if (sha256 === undefined) throw new LullError("LULL_E_ARCHIVE_FAILED", "the archive's SHA-256 was not read to its end");
  return { listing, sha256 };
}

/** Waits for a report's promise (a held archive) until it settles or `signal` aborts. */
async function holdArchive(held: void | Promise<void>, signal: AbortSignal): Promise<void> {
  if (held instanceof Promise) await heldUntil(held, signal);
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
