import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { execa } from "execa";
import { hashGrowingFile } from "./follow-hash.js";

describe("SHA-256 of a file read behind its writer (real sh writing)", () => {
  let root: string;
  before(async () => (root = await mkdtemp(join(tmpdir(), "lull-follow-hash-"))));
  after(async () => rm(root, { recursive: true, force: true }));

  it("hashes exactly what the writer appended, in bursts with pauses, once it exited", async () => {
    const path = join(root, "growing");
    await writeFile(path, "");
    const writer = execa("sh", ["-c", `for i in 1 2 3 4 5; do head -c 3000001 /dev/urandom >> "$1"; sleep 0.1; done`, "sh", path]);
    const digest = await hashGrowingFile(path, writer, new AbortController().signal);
    await writer;
    assert.equal(digest, createHash("sha256").update(await readFile(path)).digest("hex"));
    assert.equal((await readFile(path)).length, 5 * 3000001);
  });

  it("stops when the archive fails (its signal aborts): no hash", async () => {
    const path = join(root, "abandoned");
    await writeFile(path, "some");
    const abort = new AbortController();
    const hashing = hashGrowingFile(path, new Promise(() => undefined), abort.signal);
    setTimeout(() => abort.abort(), 50);
    assert.equal(await hashing, undefined);
  });
});
