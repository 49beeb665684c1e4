import assert from "node:assert/strict";
import { mkdir, mkdtemp, open, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { Consistency, SnapshotMode } from "@lull/proto";
import { writeArchive, type ArchiveResult } from "../archive/tar-zst.js";
import { jobId } from "../storage/testing/config.js";
import { checkIntegrity, listingComplaint } from "./integrity.js";
import type { RestorePoint } from "./restore-point.js";

function pointOf(r: ArchiveResult, overrides: Partial<RestorePoint> = {}): RestorePoint {
  return {
    id: "b-x", jobId: jobId(1), guestId: "101", groupRunId: "", engine: "native", mode: SnapshotMode.SNAPSHOT_MODE_COPY,
    consistency: Consistency.CONSISTENCY_APP, snapshotAt: undefined, createdAt: new Date(), locationKind: "native-archive",
    location: r.archivePath, sizeBytes: r.archiveBytes, stacks: [], protected: false, notes: "", origin: "lull",
    sha256: r.sha256, manifest: r.manifest, integrity: undefined, ...overrides,
  };
}

describe("integrity of a restore point's archive (real tar, zstd)", () => {
  let root: string;
  let written: ArchiveResult;
  before(async () => {
    root = await mkdtemp(join(tmpdir(), "lull-integrity-"));
    const vol = join(root, "vol");
    await mkdir(join(vol, "objects"), { recursive: true });
    for (let i = 0; i < 20; i++) await writeFile(join(vol, "objects", `o${i}`), Buffer.alloc(10_000 + i, i));
    written = await writeArchive({
      archiveDir: join(root, "archives"), prefix: "lull-", guestId: "101", jobId: jobId(1), zstdLevel: 3,
      volumes: [{ name: "vol", readPath: vol }], takenAt: Date.UTC(2026, 11, 2), live: false, signal: new AbortController().signal,
    });
  });
  after(async () => rm(root, { recursive: true, force: true }));

  it("an intact archive passes the hash, the zstd checksums and the tar listing against the manifest; without a manifest zstd -t checks it", async () => {
    const r = await checkIntegrity(pointOf(written));
    assert.deepEqual([r.state, r.detail], ["ok", "sha256, zstd checksums, tar listing == manifest"]);
    const bare = await checkIntegrity(pointOf(written, { manifest: undefined }));
    assert.deepEqual([bare.state, bare.detail], ["ok", "sha256, zstd -t"]);
  });

  it("a manifest that does not match tar's listing fails and says both counts", async () => {
    const r = await checkIntegrity(pointOf(written, { sha256: "", manifest: { fileCount: 21, totalBytes: 1 } }));
    assert.equal(r.state, "failed");
    assert.match(r.detail, /tar lists 20 files, \d+ bytes; the manifest recorded 21 files, 1 bytes/);
  });

  /** A copy of the archive with the byte at `offset` (from the end when negative) flipped, or cut `cut` bytes short. */
  async function damaged(name: string, change: { offset?: number; cut?: number }): Promise<string> {
    const { readFile } = await import("node:fs/promises");
    let bytes = await readFile(written.archivePath);
    if (change.cut !== undefined) bytes = bytes.subarray(0, bytes.length - change.cut);
    if (change.offset !== undefined) {
      const at = change.offset < 0 ? bytes.length + change.offset : change.offset;
      bytes[at] = bytes[at]! ^ 0xff;
    }
    const copy = join(root, name);
    await writeFile(copy, bytes);
    return copy;
  }

  it("one byte changed fails the hash; without a recorded hash the zstd checksums catch it, wherever the byte is, and a cut-off end", async () => {
    const early = await damaged("early.tar.zst", { offset: 200 });
    const byHash = await checkIntegrity(pointOf(written, { location: early }));
    assert.equal(byHash.state, "failed");
    assert.match(byHash.detail, /^sha256 [0-9a-f]{64} differs from/);
    // The last bytes are the frame's checksum: only zstd's check of it sees them changed.
    for (const location of [early, await damaged("last.tar.zst", { offset: -1 }), await damaged("cut.tar.zst", { cut: 3 })]) {
      const r = await checkIntegrity(pointOf(written, { location, sha256: "" }));
      assert.equal(r.state, "failed", location);
      assert.match(r.detail, /^tar --zstd -t failed \(exit 2\): .*(checksum|premature end|[Dd]ecoding error|Child returned)/, location);
      const alone = await checkIntegrity(pointOf(written, { location, sha256: "", manifest: undefined }));
      assert.equal(alone.state, "failed", location);
      assert.match(alone.detail, /^zstd -t failed \(exit 1\)/, location);
    }
  });

  it("a failed listing says zstd's complaint and tar's last word, however much tar printed between them", () => {
    const stderr = [
      "/*stdin*\\ : Decoding error (36) : Restored data doesn't match checksum ",
      "tar: Skipping to next header",
      "tar: Unexpected EOF in archive",
      "tar: Child returned status 1",
      "tar: Error is not recoverable: exiting now",
      "",
    ].join("\n");
    assert.equal(listingComplaint(stderr), "/*stdin*\\ : Decoding error (36) : Restored data doesn't match checksum tar: Error is not recoverable: exiting now");
    assert.equal(listingComplaint("tar: b.tar.zst: Cannot open: No such file or directory\ntar: Error is not recoverable: exiting now\n"), "tar: b.tar.zst: Cannot open: No such file or directory tar: Error is not recoverable: exiting now");
  });

  it("a missing native archive fails; PBS and unreadable vzdump points are unchecked and say why", async () => {
    assert.match((await checkIntegrity(pointOf(written, { location: join(root, "gone.tar.zst") }))).detail, /is missing/);
    const pbs = await checkIntegrity(pointOf(written, { locationKind: "pbs-snapshot", location: "ct/101/2026-12-02T10:00:00Z" }));
    assert.equal(pbs.state, "unchecked");
    const vz = await checkIntegrity(pointOf(written, { locationKind: "vzdump-archive", location: "/nonexistent/vzdump-lxc-101.tar.zst" }));
    assert.deepEqual(vz.state, "unchecked");
    const vzHere = await checkIntegrity(pointOf(written, { locationKind: "vzdump-archive" }));
    assert.equal(vzHere.state, "ok");
  });
});
