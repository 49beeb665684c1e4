// The archive's manifest, read from tar's own verbose listing while it writes: run with `-v -v`
// (and `--numeric-owner`), GNU tar prints one line per member it archives, like `tar -tv` does
// later, on its stderr (the archive itself goes to stdout, which this process never reads).
// A line starting with `-` (or `C`, contiguous) is a regular file: it adds one file and its size
// column. Hard links (`h`), symlinks, directories, devices (whose size column is `major,minor`)
// and fifos are not files. A sparse file is listed with its real size and a file of 8 GiB or more
// with its full size, as the archive's pax headers record them. Every other stderr line is one of
// tar's messages (`tar: ...`) or the `--totals` line (`Total bytes written: N`, the stream's size).
import { StringDecoder } from "node:string_decoder";

export interface ArchiveManifest {
  /** Regular files in the archive. */
  fileCount: number;
  /** The sum of their sizes (uncompressed). */
  totalBytes: number;
}

/** `-rw-r--r--  0/0   70001 2026-12-02 12:00 data/odd`: type, mode (ACL `+` allowed), ids, size. */
const LISTING_LINE = /^([-hdlcbpCDMNSV?])[-rwxsStT]{9}\S*\s+\d+\/\d+\s+(\S+)\s/;
const TOTALS_LINE = /^Total bytes written: (\d+)/;
/** The messages kept for an error (their last bytes). */
const MESSAGES_LIMIT_BYTES = 64 * 1024;

/** Reads tar's stderr under `-v -v --totals`, fed in arbitrary chunks: manifest, totals, messages. */
export class TarListingCounter {
  private fileCount = 0;
  private totalBytes = 0;
  private readonly decoder = new StringDecoder("utf8");
  private partial = "";
  private kept: string[] = [];
  private keptBytes = 0;
  /** The tar stream's size from `--totals`, once tar printed it. */
  bytesWritten: number | undefined;

  update(chunk: Buffer | string): void {
    const lines = (this.partial + (typeof chunk === "string" ? chunk : this.decoder.write(chunk))).split("\n");
    this.partial = lines.pop() ?? "";
    for (const line of lines) this.line(line);
  }

  /** The last line, when tar's stderr ended without a newline. */
  end(): void {
    const rest = this.partial + this.decoder.end();
    if (rest !== "") this.line(rest);
    this.partial = "";
  }

  result(): ArchiveManifest {
    return { fileCount: this.fileCount, totalBytes: this.totalBytes };
  }

  /** tar's messages (every stderr line that is neither a listing nor the totals), the last 64 KiB. */
  messages(): string {
    return this.kept.join("\n");
  }

  private line(line: string): void {
    const member = LISTING_LINE.exec(line);
    if (member) {
      if (member[1] === "-" || member[1] === "C") {
        this.fileCount += 1;
        this.totalBytes += Number(member[2]);
      }
      return;
    }
    const totals = TOTALS_LINE.exec(line);
    if (totals) {
      this.bytesWritten = Number(totals[1]);
      return;
    }
    this.kept.push(line);
    this.keptBytes += line.length + 1;
    while (this.keptBytes > MESSAGES_LIMIT_BYTES && this.kept.length > 1) this.keptBytes -= this.kept.shift()!.length + 1;
  }
}
