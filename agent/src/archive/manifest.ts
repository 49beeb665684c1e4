// The archive's manifest, counted from the tar stream as it is written: every 512-byte header the
// stream carries is read once on its way to zstd. A regular-file member (typeflag '0', NUL or the
// contiguous '7') adds one file and its size; pax ('x', 'g') and GNU long-name ('L', 'K') headers
// carry metadata for the next member, so their data is skipped and they are not counted. Sizes in
// tar's octal form and in GNU's base-256 form (first byte 0x80) are both read. A pax `size=`
// record overrides the next member's header size (files of 8 GiB and more); a sparse file (GNU
// sparse 1.0 in pax, as `tar --sparse --format=posix` writes it) counts its real size.
import { createHash, type Hash } from "node:crypto";
import { Transform } from "node:stream";

export interface ArchiveManifest {
  /** Regular files in the archive. */
  fileCount: number;
  /** The sum of their sizes (uncompressed). */
  totalBytes: number;
}

const BLOCK = 512;

function headerSize(h: Buffer): number {
  const field = h.subarray(124, 136);
  if ((field[0]! & 0x80) !== 0) {
    let n = 0;
    for (let i = 1; i < field.length; i++) n = n * 256 + field[i]!;
    return n;
  }
  const text = field.toString("latin1").replace(/\0.*$/s, "").trim();
  return text === "" ? 0 : parseInt(text, 8);
}

function paxNumber(data: Buffer, key: string): number | undefined {
  const m = new RegExp(`(?:^|\\n)\\d+ ${key.replace(/\./g, "\\.")}=(\\d+)\\n`).exec(data.toString("utf8"));
  return m ? Number(m[1]) : undefined;
}

/** Counts regular-file members of a tar stream fed in arbitrary chunks. */
export class TarManifestCounter {
  private header = Buffer.alloc(0);
  /** Bytes of the current member's data (and padding) still to pass. */
  private skip = 0;
  /** A pax/long-name member's data being collected. */
  private collecting: Buffer[] | undefined;
  private collectLeft = 0;
  private nextSize: number | undefined;
  /** A sparse file's real size (pax `GNU.sparse.realsize`); its header size is the stored size. */
  private nextRealSize: number | undefined;
  private fileCount = 0;
  private totalBytes = 0;

  update(chunk: Buffer): void {
    let at = 0;
    while (at < chunk.length) {
      if (this.skip > 0) {
        const n = Math.min(this.skip, chunk.length - at);
        if (this.collecting && this.collectLeft > 0) {
          const take = Math.min(n, this.collectLeft);
          this.collecting.push(chunk.subarray(at, at + take));
          this.collectLeft -= take;
          if (this.collectLeft === 0) {
            const data = Buffer.concat(this.collecting);
            const size = paxNumber(data, "size");
            if (size !== undefined) this.nextSize = size;
            const real = paxNumber(data, "GNU.sparse.realsize");
            if (real !== undefined) this.nextRealSize = real;
          }
        }
        this.skip -= n;
        at += n;
        if (this.skip === 0) this.collecting = undefined;
        continue;
      }
      const need = BLOCK - this.header.length;
      const part = chunk.subarray(at, at + need);
      this.header = this.header.length === 0 ? Buffer.from(part) : Buffer.concat([this.header, part]);
      at += part.length;
      if (this.header.length < BLOCK) continue;
      this.onHeader(this.header);
      this.header = Buffer.alloc(0);
    }
  }

  private onHeader(h: Buffer): void {
    if (h.every((b) => b === 0)) return; // end-of-archive blocks
    const type = String.fromCharCode(h[156]!);
    let size = headerSize(h);
    const padded = Math.ceil(size / BLOCK) * BLOCK;
    if (type === "x" || type === "g" || type === "L" || type === "K") {
      if (type === "x") {
        this.collecting = [];
        this.collectLeft = size;
      }
      this.skip = padded;
      return;
    }
    if (this.nextSize !== undefined) {
      size = this.nextSize;
      this.nextSize = undefined;
    }
    const real = this.nextRealSize ?? size;
    this.nextRealSize = undefined;
    const dataBlocks = Math.ceil(size / BLOCK) * BLOCK;
    if (type === "0" || type === "\0" || type === "7") {
      this.fileCount += 1;
      this.totalBytes += real;
      this.skip = dataBlocks;
    } else {
      // links, directories, devices, fifos carry no data; GNU sparse ('S') is not written by Lull's tar.
      this.skip = type === "S" ? dataBlocks : 0;
    }
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
