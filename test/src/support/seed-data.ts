// Bulk data for a guest's volume: many files of random-ish content (half random bytes, half
// repeated text, so zstd has work to do but still compresses), spread over subdirectories.
import { randomBytes } from "node:crypto";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";

export interface SeedOptions {
  /** Where the files go (created). */
  dir: string;
  totalBytes: number;
  /** Size of each file; default 256 KiB. */
  fileBytes?: number;
  /** Files per subdirectory; default 64. */
  filesPerDir?: number;
}

export interface SeedResult {
  files: number;
  bytes: number;
}

const TEXT = Buffer.from("lull seed data: the quick brown fox jumps over the lazy dog 0123456789\n");

function fileContent(size: number): Buffer {
  const randomPart = Math.floor(size / 2);
  const buf = Buffer.allocUnsafe(size);
  randomBytes(randomPart).copy(buf, 0);
  for (let at = randomPart; at < size; at += TEXT.length) TEXT.copy(buf, at, 0, Math.min(TEXT.length, size - at));
  return buf;
}

/** Writes about `totalBytes` in files of `fileBytes` under `dir/seed-NNN/file-NNNNN.bin`. */
export async function writeSeedData(options: SeedOptions): Promise<SeedResult> {
  const fileBytes = options.fileBytes ?? 256 * 1024;
  const perDir = options.filesPerDir ?? 64;
  const files = Math.max(1, Math.ceil(options.totalBytes / fileBytes));
  let bytes = 0;
  for (let i = 0; i < files; i++) {
    const sub = join(options.dir, `seed-${String(Math.floor(i / perDir)).padStart(3, "0")}`);
    if (i % perDir === 0) await mkdir(sub, { recursive: true });
    const size = Math.min(fileBytes, options.totalBytes - bytes);
    await writeFile(join(sub, `file-${String(i).padStart(5, "0")}.bin`), fileContent(size));
    bytes += size;
  }
  return { files, bytes };
}
