// The archive's manifest, counted from the tar stream as it is written: every 512-byte header the
// stream carries is read once on its way to zstd (tar-headers.ts). A regular-file member (typeflag
// '0', NUL or the contiguous '7') adds one file and its size; pax and GNU long-name headers describe
// the next member and are not counted. A pax `size=` record overrides the header size (files of
// 8 GiB and more); a sparse file (GNU sparse 1.0 in pax, as `tar --sparse --format=posix` writes
// it) counts its real size.
import { createHash, type Hash } from "node:crypto";
import { Transform } from "node:stream";
import { TarHeaderReader } from "./tar-headers.js";

export interface ArchiveManifest {
  /** Regular files in the archive. */
  fileCount: number;
  /** The sum of their sizes (uncompressed). */
  totalBytes: number;
}

/** Counts regular-file members of a tar stream fed in arbitrary chunks. */
export class TarManifestCounter {
  private fileCount = 0;
  private totalBytes = 0;
  private readonly reader = new TarHeaderReader((m) => {
    // links, directories, devices and fifos are not files; a sparse file counts its real size.
    if (m.type !== "file") return;
    this.fileCount += 1;
    this.totalBytes += m.size;
  });

  update(chunk: Buffer): void {
    this.reader.update(chunk);
  }

  result(): ArchiveManifest {
    return { fileCount: this.fileCount, totalBytes: this.totalBytes };
  }
}

/** A pass-through stream that feeds every chunk to a SHA-256 hash. */
export function hashingStream(hash: Hash = createHash("sha256")): { stream: Transform; digest: () => string } {
  let hex: string | undefined;
  const stream = new Transform({
    transform(chunk: Buffer, _e, done) {
      hash.update(chunk);
      done(null, chunk);
    },
  });
  return { stream, digest: () => (hex ??= hash.digest("hex")) };
}
