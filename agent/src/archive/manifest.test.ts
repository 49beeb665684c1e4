import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { execFileSync, spawnSync } from "node:child_process";
import { link, mkdir, mkdtemp, readFile, rm, symlink, truncate, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { jobId } from "../storage/testing/config.js";
import { TarListingCounter } from "./manifest.js";
import { writeArchive } from "./tar-zst.js";

/** Regular files and their sizes as GNU tar itself lists them (`tar -tv`), the reference. */
function tarListing(archive: string): { fileCount: number; totalBytes: number } {
  const out = execFileSync("tar", ["--zstd", "-tvf", archive, "--numeric-owner"], { encoding: "utf8" });
  let fileCount = 0;
  let totalBytes = 0;
  for (const line of out.split("\n").filter(Boolean)) {
    if (!line.startsWith("-")) continue; // d, l, h (hard link lines start with h), c, b, p
    if (/ link to /.test(line)) continue;
    fileCount += 1;
    totalBytes += Number(line.split(/\s+/)[2]);
  }
  return { fileCount, totalBytes };
}

describe("archive manifest (from tar's listing) and SHA-256 recorded while writing (real tar and zstd)", () => {
  let root: string;
  let vol: string;
  before(async () => {
    root = await mkdtemp(join(tmpdir(), "lull-manifest-"));
    vol = join(root, "data");
    const deep = join(vol, "d".repeat(90), "e".repeat(90));
    await mkdir(deep, { recursive: true });
    await writeFile(join(deep, `${"long-name-".repeat(12)}.txt`), "a file whose path needs a pax header\n");
    await writeFile(join(vol, "empty"), "");
    await writeFile(join(vol, "exact-block"), Buffer.alloc(512, 7));
    await writeFile(join(vol, "odd"), Buffer.alloc(70_001, 3));
    await writeFile(join(vol, "ünïcødé name"), "utf-8 names go through pax too\n");
    await link(join(vol, "odd"), join(vol, "odd-hardlink"));
    await symlink("odd", join(vol, "odd-symlink"));
    await writeFile(join(vol, "sparse"), "head");
    await truncate(join(vol, "sparse"), 8 * 1024 * 1024);
    // 9 GB, past what a ustar size field holds: its size is in a pax header, and the listing shows it whole.
    await writeFile(join(vol, "huge-sparse"), "");
    await truncate(join(vol, "huge-sparse"), 9_000_000_000);
    execFileSync("mkfifo", [join(vol, "fifo")]);
    // tar escapes the line break in a listed name: no second listing line appears.
    await writeFile(join(vol, "x\n-rw-r--r-- 0:0 5 2026-01-01 00:00 not a member"), "x");
  });
  after(async () => rm(root, { recursive: true, force: true }));

  it("counts exactly the regular files and bytes tar lists, and hashes exactly the file written", async () => {
    const r = await writeArchive({
      archiveDir: join(root, "archives"),
      prefix: "lull-",
      guestId: "101",
      jobId: jobId(1),
      zstdLevel: 3,
      volumes: [{ name: "data", readPath: vol }],
      takenAt: Date.UTC(2026, 11, 2, 12, 0, 0),
      live: false,
      signal: new AbortController().signal,
    });
    assert.equal(r.sha256, createHash("sha256").update(await readFile(r.archivePath)).digest("hex"));
    // empty, exact-block, odd, long name, unicode, sparse, huge sparse, the name with a line break; the hard
    // link, the symlink and the fifo carry no data.
    assert.deepEqual(r.manifest, { fileCount: 8, totalBytes: 0 + 512 + 70_001 + 37 + 31 + 8 * 1024 * 1024 + 9_000_000_000 + 1 });
    assert.deepEqual(r.manifest, tarListing(r.archivePath));
  });

  it("gives the same count whatever the chunking of tar's stderr, and keeps tar's messages and totals apart", () => {
    const run = spawnSync("tar", ["--create", "--file=-", "--format=posix", "--sparse", "--numeric-owner", "-vv", "--totals", "-C", vol, ".", "no-such-member"], { stdio: ["ignore", "ignore", "pipe"] });
    const stderr = run.stderr;
    const whole = new TarListingCounter();
    whole.update(stderr);
    whole.end();
    const bytewise = new TarListingCounter();
    for (let at = 0; at < stderr.length; at += 1 + (at % 97)) bytewise.update(stderr.subarray(at, at + 1 + (at % 97)));
    bytewise.end();
    assert.deepEqual(bytewise.result(), whole.result());
    assert.equal(whole.result().fileCount, 8);
    assert.match(whole.messages(), /^tar: no-such-member: Cannot stat: No such file or directory$/m);
    assert.doesNotMatch(whole.messages(), /Total bytes|0\/0/);
    assert.ok(whole.bytesWritten !== undefined && whole.bytesWritten > 70_001, String(whole.bytesWritten));
    assert.equal(bytewise.messages(), whole.messages());
  });
});
