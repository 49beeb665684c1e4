import assert from "node:assert/strict";
import { link, mkdir, mkdtemp, rm, symlink, truncate, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { LullError } from "@lull/shared";
import { measureTrees } from "./measure.js";

describe("archive byte total (real find, and the in-process walk where find is not on PATH)", () => {
  let root: string;
  before(async () => {
    root = await mkdtemp(join(tmpdir(), "lull-measure-"));
    await mkdir(join(root, "a", "deep", "er"), { recursive: true });
    await writeFile(join(root, "a", "one"), Buffer.alloc(1000));
    await writeFile(join(root, "a", "deep", "er", "line\nbreak"), Buffer.alloc(24));
    await writeFile(join(root, "a", "-starts-with-dash"), Buffer.alloc(3));
    await link(join(root, "a", "one"), join(root, "a", "one-hardlink"));
    await symlink(join(root, "a", "one"), join(root, "a", "one-symlink"));
    await symlink(join(root, "a"), join(root, "a", "deep", "loop"));
    await writeFile(join(root, "a", "sparse"), "");
    await truncate(join(root, "a", "sparse"), 9_000_000_000);
    await mkdir(join(root, "b"));
    await writeFile(join(root, "b", "two"), Buffer.alloc(5));
  });
  after(async () => rm(root, { recursive: true, force: true }));

  it("sums the regular files' sizes under every path, a hard link again, symlinks not followed", async () => {
    assert.equal(await measureTrees([join(root, "a"), join(root, "b")]), 1000 + 24 + 3 + 1000 + 9_000_000_000 + 5);
    assert.equal(await measureTrees([join(root, "a", "one-symlink")]), 0, "a read path that is a symlink is not followed");
  });

  it("without find on PATH, the in-process walk gives the same sums", async () => {
    const path = process.env.PATH;
    process.env.PATH = join(root, "no-programs-here");
    try {
      assert.equal(await measureTrees([join(root, "a"), join(root, "b")]), 1000 + 24 + 3 + 1000 + 9_000_000_000 + 5);
      assert.equal(await measureTrees([join(root, "a", "one-symlink")]), 0);
      assert.equal(await measureTrees([join(root, "gone")]), 0);
    } finally {
      process.env.PATH = path;
    }
  });

  it("a read path that does not exist measures 0; an aborted signal is LULL_E_CANCELLED", async () => {
    assert.equal(await measureTrees([join(root, "gone")]), 0);
    const abort = new AbortController();
    abort.abort();
    await assert.rejects(measureTrees([root], abort.signal), (e: unknown) => e instanceof LullError && e.code === "LULL_E_CANCELLED");
  });
});
