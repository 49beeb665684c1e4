// The SHA-256 of a file another process is still appending to (zstd writing the archive), read
// behind the writer from the pages it just wrote (page cache): the hash is of exactly what was
// written, as a read after the write would give, but it runs while the archive is written
// instead of after it. zstd only appends to its output (it never seeks back), so a byte once read
// does not change. When the writer has exited, the file is read to its end and the hash is done.
import { createHash } from "node:crypto";
import { open } from "node:fs/promises";

const CHUNK_BYTES = 4 * 1024 * 1024;
/** How long to wait for more bytes once the reader caught up with the writer. */
const CAUGHT_UP_WAIT_MS = 20;

/**
 * Hashes `path` as it grows until `writerExited` settles (either way) and the end is read.
 * Resolves undefined when `signal` aborts first (the archive failed: its hash is not needed).
 */
export async function hashGrowingFile(path: string, writerExited: Promise<unknown>, signal: AbortSignal): Promise<string | undefined> {
  let exited = false;
  writerExited.then(
    () => (exited = true),
    () => (exited = true),
  );
  const handle = await open(path, "r");
  try {
    const hash = createHash("sha256");
    const buffer = Buffer.allocUnsafe(CHUNK_BYTES);
    let offset = 0;
    for (;;) {
      if (signal.aborted) return undefined;
      // Whether the writer had exited before this read: then a read that returns nothing is the end.
      const wasExited = exited;
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, offset);
      if (bytesRead > 0) {
        hash.update(buffer.subarray(0, bytesRead));
        offset += bytesRead;
        continue;
      }
      if (wasExited) return hash.digest("hex");
      await new Promise((resolve) => setTimeout(resolve, CAUGHT_UP_WAIT_MS));
    }
  } finally {
    await handle.close();
  }
}
