// Removes a directory tree the agent created, even when the copy inside it kept
// read-only directory modes (a non-root agent cannot unlink inside a 0555 directory).
import { chmod, lstat, readdir, rm } from "node:fs/promises";
import { join } from "node:path";

function codeOf(err: unknown): unknown {
  return (err as { code?: unknown }).code;
}

async function makeDirsWritable(path: string): Promise<void> {
  const st = await lstat(path).catch(() => undefined);
  if (!st?.isDirectory()) return;
  await chmod(path, (st.mode & 0o7777) | 0o700).catch(() => undefined);
  const entries = await readdir(path, { withFileTypes: true }).catch(() => []);
  for (const entry of entries) {
    if (entry.isDirectory()) await makeDirsWritable(join(path, entry.name));
  }
}

/** `rm -rf path`; returns false when there was nothing to remove. */
export async function removeTree(path: string): Promise<boolean> {
  const exists = await lstat(path).then(
    () => true,
    (err: unknown) => {
      if (codeOf(err) === "ENOENT") return false;
      throw err;
    },
  );
  if (!exists) return false;
  try {
    await rm(path, { recursive: true, force: true });
  } catch (err) {
    if (codeOf(err) !== "EACCES" && codeOf(err) !== "EPERM") throw err;
    await makeDirsWritable(path);
    await rm(path, { recursive: true, force: true });
  }
  return true;
}
