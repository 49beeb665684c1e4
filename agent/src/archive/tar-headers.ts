// A tar stream's members, read from its 512-byte headers as the stream passes (fed in arbitrary
// chunks, never buffered whole). Names come from where GNU tar puts them: the ustar name with its
// prefix field, a GNU long-name ('L') or long-link ('K') member before it, or a pax extended
// header ('x': `path`, `linkpath`, `size`, and for GNU sparse 1.0 `GNU.sparse.name` and
// `GNU.sparse.realsize`). Pax and long-name members describe the next member and are not members
// themselves. Sizes in tar's octal form and GNU's base-256 form (first byte 0x80) are both read.
// The restore's safety check (safe-extract.ts) reads archives through this reader. (The manifest
// of a new archive comes from tar's own listing as it writes, manifest.ts: this process never
// reads that stream.)

export type TarMemberType = "file" | "hardlink" | "symlink" | "directory" | "char-device" | "block-device" | "fifo" | "other";

export interface TarMember {
  type: TarMemberType;
  /** The member's path as stored (no normalisation). */
  name: string;
  /** Hard link or symlink target as stored; empty otherwise. */
  linkname: string;
  /** Regular files: the real size (a sparse file's full size); 0 for other types. */
  size: number;
  /** The raw typeflag character. */
  typeflag: string;
}

const BLOCK = 512;

const TYPES: Record<string, TarMemberType> = {
  "0": "file",
  "\0": "file",
  "7": "file",
  "1": "hardlink",
  "2": "symlink",
  "3": "char-device",
  "4": "block-device",
  "5": "directory",
  "6": "fifo",
};

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

function cString(b: Buffer): string {
  const end = b.indexOf(0);
  return (end < 0 ? b : b.subarray(0, end)).toString("utf8");
}

/** Pax records `<len> <key>=<value>\n`, read by their lengths (a value may hold newlines). */
export function parsePax(data: Buffer): Map<string, string> {
  const out = new Map<string, string>();
  let at = 0;
  while (at < data.length) {
    const space = data.indexOf(0x20, at);
    if (space < 0) break;
    const len = Number(data.subarray(at, space).toString("latin1"));
    if (!Number.isInteger(len) || len <= 0 || at + len > data.length) break;
    const record = data.subarray(space + 1, at + len - 1).toString("utf8");
    const eq = record.indexOf("=");
    if (eq > 0) out.set(record.slice(0, eq), record.slice(eq + 1));
    at += len;
  }
  return out;
}

/** Reads members from a tar stream; `onMember` is called for each, in stream order. */
export class TarHeaderReader {
  private header = Buffer.alloc(0);
  /** Bytes of the current member's data (and padding) still to pass. */
  private skip = 0;
  /** A pax or long-name member's data being collected, and of which kind. */
  private collecting: { kind: string; parts: Buffer[]; left: number } | undefined;
  private pending: { name?: string; linkname?: string; size?: number; realSize?: number } = {};
  private ended = false;

  constructor(private readonly onMember: (m: TarMember) => void) {}

  update(chunk: Buffer): void {
    let at = 0;
    while (at < chunk.length) {
      if (this.skip > 0) {
        const n = Math.min(this.skip, chunk.length - at);
        const c = this.collecting;
        if (c && c.left > 0) {
          const take = Math.min(n, c.left);
          c.parts.push(Buffer.from(chunk.subarray(at, at + take)));
          c.left -= take;
          if (c.left === 0) this.collected(c.kind, Buffer.concat(c.parts));
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

  /** Whether the end-of-archive blocks were seen. */
  get sawEnd(): boolean {
    return this.ended;
  }

  private collected(kind: string, data: Buffer): void {
    if (kind === "L") this.pending.name = cString(data);
    else if (kind === "K") this.pending.linkname = cString(data);
    else {
      const pax = parsePax(data);
      const sparseName = pax.get("GNU.sparse.name");
      const path = sparseName ?? pax.get("path");
      if (path !== undefined) this.pending.name = path;
      const link = pax.get("linkpath");
      if (link !== undefined) this.pending.linkname = link;
      const size = pax.get("size");
      if (size !== undefined) this.pending.size = Number(size);
      const real = pax.get("GNU.sparse.realsize");
      if (real !== undefined) this.pending.realSize = Number(real);
    }
  }

  private onHeader(h: Buffer): void {
    if (h.every((b) => b === 0)) {
      this.ended = true;
      return;
    }
    const typeflag = String.fromCharCode(h[156]!);
    let size = headerSize(h);
    const padded = Math.ceil(size / BLOCK) * BLOCK;
    if (typeflag === "x" || typeflag === "g" || typeflag === "L" || typeflag === "K") {
      // A global pax header ('g') applies to the whole archive; GNU tar writes none, and its
      // records are not applied here (a `path` in it would name no member of its own).
      if (typeflag !== "g") this.collecting = { kind: typeflag, parts: [], left: size };
      this.skip = padded;
      return;
    }
    const pending = this.pending;
    this.pending = {};
    if (pending.size !== undefined) size = pending.size;
    const dataBlocks = Math.ceil(size / BLOCK) * BLOCK;
    const ustar = h.subarray(257, 262).toString("latin1") === "ustar";
    const prefix = ustar ? cString(h.subarray(345, 500)) : "";
    const headerName = cString(h.subarray(0, 100));
    const name = pending.name ?? (prefix ? `${prefix}/${headerName}` : headerName);
    const linkname = pending.linkname ?? cString(h.subarray(157, 257));
    const type = TYPES[typeflag] ?? "other";
    this.skip = type === "file" || typeflag === "S" || type === "other" ? dataBlocks : 0;
    this.onMember({ type, name, linkname: type === "hardlink" || type === "symlink" ? linkname : "", size: type === "file" ? (pending.realSize ?? size) : 0, typeflag });
  }
}
