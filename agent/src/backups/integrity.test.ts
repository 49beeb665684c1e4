import assert from "node:assert/strict";
import { mkdir, mkdtemp, open, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { Consistency, SnapshotMode } from "@lull/proto";
import { writeArchive, type ArchiveResult } from "../archive/tar-zst.js";
import { jobId } from "../storage/testing/config.js";
import { checkIntegrity } from "./integrity.js";
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

  it("an intact archive passes the hash, zstd -t and the tar listing against the manifest", async () => {
    const r = await checkIntegrity(pointOf(written));
    assert.deepEqual([r.state, r.detail], ["ok", "sha256, zstd -t, tar listing == manifest"]);
  });

  it("a manifest that does not match tar's listing fails and says both counts", async () => {
    const r = await checkIntegrity(pointOf(written, { sha256: "", manifest: { fileCount: 21, totalBytes: 1 } }));
    assert.equal(r.state, "failed");
    assert.match(r.detail, /tar lists 20 files, \d+ bytes; the manifest recorded 21 files, 1 bytes/);
  });

  it("one byte changed fails the hash; without a recorded hash zstd -t catches it", async () => {
    const copy = join(root, "tampered.tar.zst");
    await writeFile(copy, await (await import("node:fs/promises")).readFile(written.archivePath));
    const fh = await open(copy, "r+");
    const buf = Buffer.alloc(1);
    await fh.read(buf, 0, 1, 200);
    buf[0] = buf[0]! ^ 0xff;
    await fh.write(buf, 0, 1, 200);
    await fh.close();
    const byHash = await checkIntegrity(pointOf(written, { location: copy }));
    assert.equal(byHash.state, "failed");
    assert.match(byHash.detail, /^sha256 [0-9a-f]{64} differs from/);
    const byZstd = await checkIntegrity(pointOf(written, { location: copy, sha256: "" }));
    assert.equal(byZstd.state, "failed");
    assert.match(byZstd.detail, /zstd -t failed|tar -t exited/);
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
