// Writing the archive as vzdump does: into `<basename>.{tar|vma}.dat`, compressed on the way
// (gzip via zlib, zstd via the zstd binary; lzo is not modelled), renamed to the final name at
// the end; with --stdout into stdout instead. Injected fault slowArchive { chunkBytes, delayMs }
// throttles the writer so tests can watch the .dat grow (and kill vzdump while it does).
// To a PBS target (writePbsArchive) the uncompressed stream goes into the fake server's snapshot
// directory (pbs/<storeid>/<ct|vm>/<id>/<time>/<archive>), never to the dump dir.
// Not reproduced: lzo/pigz, bwlimit, ionice, the real VMA container format, PBS chunking/pxar.
import { spawn } from "node:child_process";
import { createWriteStream, mkdirSync, renameSync, statSync } from "node:fs";
import { join } from "node:path";
import { pbsSnapshotDir } from "../storage.js";
import { Transform, PassThrough } from "node:stream";
import { pipeline } from "node:stream/promises";
import { createGzip } from "node:zlib";

export function compressExt(compress) {
  switch (compress) {
    case undefined:
    case "0":
      return "";
    case "1":
    case "lzo":
      return ".lzo";
    case "gzip":
      return ".gz";
    case "zstd":
      return ".zst";
    default:
      throw new Error(`compress: value '${compress}' does not have a value in the enumeration '0, 1, gzip, lzo, zstd'`);
  }
}

function throttle(ctx) {
  const slow = ctx.state.faults().slowArchive;
  if (!slow) return new PassThrough();
  const chunkBytes = slow.chunkBytes ?? 4096;
  const delayMs = slow.delayMs ?? 50;
  return new Transform({
    async transform(chunk, _enc, done) {
      try {
        for (let i = 0; i < chunk.length; i += chunkBytes) {
          this.push(chunk.subarray(i, i + chunkBytes));
          await ctx.sleep(delayMs);
        }
        done();
      } catch (e) {
        done(e);
      }
    },
  });
}

function compressor(compress) {
  switch (compress) {
    case "gzip":
      return { stream: createGzip() };
    case "zstd": {
      return { child: spawn("zstd", ["-q", "-c", "-T1"], { stdio: ["pipe", "pipe", "inherit"] }) };
    }
    case "1":
    case "lzo":
      throw new Error("fake vzdump: lzo compression is not modelled (use 0, gzip or zstd)");
    default:
      return {};
  }
}

/**
 * Pipes `source` (a Readable) through compression and the throttle into the .dat file (or stdout),
 * then renames it to task.target. Returns the archive's size in bytes.
 */
export async function writeArchive(ctx, task, source) {
  const toStdout = ctx.opts.stdout;
  const sink = toStdout ? process.stdout : createWriteStream(task.tmptar, { flags: "w", mode: 0o644 });
  const stages = [source];
  const { stream, child } = compressor(ctx.opts.compress);
  if (stream) stages.push(stream);
  const slow = throttle(ctx);
  if (child) {
    const fed = pipeline(source, child.stdin, { signal: ctx.abortSignal });
    const exited = new Promise((resolve) => child.on("close", (code) => resolve(code)));
    await pipeline(child.stdout, slow, sink, { signal: ctx.abortSignal, end: !toStdout });
    await fed;
    const code = await exited;
    if (code !== 0) throw new Error(`command 'zstd' failed: exit code ${code}`);
  } else {
    stages.push(slow, sink);
    await pipeline(...stages, { signal: ctx.abortSignal, end: !toStdout });
  }
  if (toStdout) return 0;
  renameSync(task.tmptar, task.target);
  return statSync(task.target).size;
}

/** A PBS target: `source` into <snapshot dir>/<archiveName> (throttled like the file writer). Returns the bytes written. */
export async function writePbsArchive(ctx, task, source, archiveName) {
  const dir = pbsSnapshotDir(ctx.state, ctx.pbs.storeid, task.target);
  mkdirSync(dir, { recursive: true });
  const file = join(dir, archiveName);
  await pipeline(source, throttle(ctx), createWriteStream(file, { flags: "w", mode: 0o644 }), { signal: ctx.abortSignal });
  return statSync(file).size;
}
