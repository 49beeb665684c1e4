// The archive's byte total, measured before it starts: the sum of the sizes of the
// regular files under each read path (symlinks are not followed). Files that vanish
// while walking a live path are skipped.
import { lstat, readdir } from "node:fs/promises";
import { join } from "node:path";
import { LullError } from "@lull/shared";

function codeOf(err: unknown): unknown {
  return (err as { code?: unknown }).code;
}

async function sizeOf(path: string, signal: AbortSignal | undefined): Promise<number> {
  if (signal?.aborted) throw new LullError("LULL_E_CANCELLED", "measuring the archive: cancelled", { cause: signal.reason });
  const st = await lstat(path).catch((err: unknown) => {
    if (codeOf(err) === "ENOENT") return undefined;
    throw err;
  });
  if (!st) return 0;
  if (st.isFile()) return st.size;
  if (!st.isDirectory()) return 0;
  const entries = await readdir(path).catch((err: unknown) => {
    if (codeOf(err) === "ENOENT") return [] as string[];
    throw err;
  });
  let total = 0;
  for (const entry of entries) total += await sizeOf(join(path, entry), signal);
  return total;
}

/** Sum of regular file sizes under every path, in bytes. */
export async function measureTrees(paths: readonly string[], signal?: AbortSignal): Promise<number> {
  let total = 0;
  for (const path of paths) total += await sizeOf(path, signal);
  return total;
}
