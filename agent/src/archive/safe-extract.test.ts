import assert from "node:assert/strict";
import { mkdir, mkdtemp, readdir, readFile, readlink, rm, stat, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { execa } from "execa";
import { LullError } from "@lull/shared";
import { checkArchive, memberProblem, safeExtract } from "./safe-extract.js";
import type { TarMember } from "./tar-headers.js";

/** One ustar member (header + data), written by hand so hostile archives can be made. */
function ustar(name: string, typeflag: string, data = Buffer.alloc(0), linkname = ""): Buffer {
  const h = Buffer.alloc(512);
  h.write(name, 0, 100, "utf8");
  h.write("0000644\0", 100);
  h.write("0000000\0", 108);
  h.write("0000000\0", 116);
  h.write(`${data.length.toString(8).padStart(11, "0")}\0`, 124);
  h.write("00000000000\0", 136);
  h.write("        ", 148);
  h.write(typeflag, 156);
  h.write(linkname, 157, 100, "utf8");
  h.write("ustar\0", 257);
  h.write("00", 263);
  if (typeflag === "3" || typeflag === "4") {
    h.write("0000001\0", 329);
    h.write("0000003\0", 337);
  }
  let sum = 0;
  for (const b of h) sum += b;
  h.write(`${sum.toString(8).padStart(6, "0")}\0 `, 148);
  const pad = Buffer.alloc((512 - (data.length % 512)) % 512);
  return Buffer.concat([h, data, pad]);
}

async function zstdArchive(path: string, members: Buffer[]): Promise<void> {
  const tar = Buffer.concat([...members, Buffer.alloc(1024)]);
  await execa("zstd", ["-q", "-c"], { input: tar, encoding: "buffer", stdout: { file: path } });
}

const signal = new AbortController().signal;
let dir: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "lull-safe-extract-"));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

const member = (type: TarMember["type"], name: string, linkname = ""): TarMember => ({ type, name, linkname, size: 0, typeflag: "" });

describe("memberProblem", () => {
  it("passes what a volume holds: files, dirs, absolute and relative symlinks, hard links inside", () => {
    const links = new Set<string>();
    for (const m of [member("directory", "data/"), member("file", "data/a"), member("symlink", "data/bin", "/usr/bin"), member("symlink", "data/up", "../x"), member("hardlink", "data/b", "data/a"), member("file", "./data/c")]) {
      assert.equal(memberProblem(m, links), undefined, m.name);
    }
  });
  it("names each hostile member", () => {
    const cases: Array<[TarMember[], RegExp]> = [
      [[member("file", "/etc/passwd")], /absolute path/],
      [[member("file", "data/../../etc/passwd")], /parent-directory/],
      [[member("char-device", "data/null")], /device node/],
      [[member("block-device", "data/sda")], /device node/],
      [[member("fifo", "data/pipe")], /fifo/],
      [[member("symlink", "data/esc", "/etc"), member("file", "data/esc/passwd")], /below the symlink data\/esc/],
      [[member("symlink", "data/esc", "/etc"), member("directory", "data/esc/")], /replace the symlink|below/],
      [[member("hardlink", "data/h", "/etc/shadow")], /hard link data\/h: its target \/etc\/shadow is an absolute path/],
      [[member("hardlink", "data/h", "../etc/shadow")], /parent-directory/],
      [[member("symlink", "data/esc", "/etc"), member("hardlink", "data/h", "data/esc/shadow")], /below the symlink/],
      [[{ ...member("other", "data/x"), typeflag: "V" }], /member type 'V'/],
    ];
    for (const [members, re] of cases) {
      const links = new Set<string>();
      const problems = members.map((m) => memberProblem(m, links)).filter(Boolean);
      assert.match(problems[0] ?? "", re, members.map((m) => m.name).join(" "));
    }
  });
});

describe("safeExtract", () => {
  it("extracts a GNU tar archive byte-equal and reports its manifest", async () => {
    const src = join(dir, "src");
    await mkdir(join(src, "vol", "objects"), { recursive: true });
    await writeFile(join(src, "vol", "log"), "line 1\nline 2\n");
    await writeFile(join(src, "vol", "objects", "blob"), Buffer.alloc(70_000, 7));
    await symlink("/usr/bin", join(src, "vol", "bin"));
    const archive = join(dir, "good.tar.zst");
    await execa("tar", ["--zstd", "--format=posix", "-cf", archive, "-C", src, "vol"]);
    const checked = await checkArchive(archive, { expect: {}, signal });
    assert.deepEqual(checked.manifest, { fileCount: 2, totalBytes: 14 + 70_000 });
    assert.deepEqual(checked.volumes, ["vol"]);
    const target = join(dir, "good-target");
    await mkdir(target);
    await safeExtract(archive, target, { expect: { sha256: checked.sha256, manifest: checked.manifest }, signal });
    assert.equal(await readFile(join(target, "vol", "log"), "utf8"), "line 1\nline 2\n");
    assert.deepEqual(await readFile(join(target, "vol", "objects", "blob")), Buffer.alloc(70_000, 7));
    assert.equal(await readlink(join(target, "vol", "bin")), "/usr/bin");
  });

  it("refuses an archive changed by one byte (hash) and writes nothing", async () => {
    const archive = join(dir, "good.tar.zst");
    const { sha256, manifest } = await checkArchive(archive, { expect: {}, signal });
    const bytes = await readFile(archive);
    // A byte in zstd's frame header region would fail decompression; flip one in the middle instead.
    const tampered = Buffer.from(bytes);
    const at = Math.floor(bytes.length / 2);
    tampered[at] = tampered[at]! ^ 0x01;
    const bad = join(dir, "tampered.tar.zst");
    await writeFile(bad, tampered);
    const target = join(dir, "tampered-target");
    await mkdir(target);
    await assert.rejects(safeExtract(bad, target, { expect: { sha256, manifest }, signal }), (err: LullError) => err.code === "LULL_E_ARCHIVE_CORRUPT");
    assert.deepEqual(await readdir(target), []);
  });

  it("refuses a manifest that differs from the catalog's", async () => {
    const archive = join(dir, "good.tar.zst");
    const target = join(dir, "manifest-target");
    await mkdir(target);
    await assert.rejects(safeExtract(archive, target, { expect: { manifest: { fileCount: 3, totalBytes: 1 } }, signal }), /holds 2 files, 70014 bytes; the manifest recorded 3 files/);
    assert.deepEqual(await readdir(target), []);
  });

  it("refuses hostile archives and writes nothing inside or outside the target", async () => {
    const outside = join(dir, "outside");
    await mkdir(outside, { recursive: true });
    const payload = Buffer.from("owned\n");
    const hostile: Array<[string, Buffer[]]> = [
      ["traversal", [ustar("vol/", "5"), ustar("vol/../../outside/t1", "0", payload)]],
      ["absolute", [ustar(`${outside}/t2`, "0", payload)]],
      ["device", [ustar("vol/", "5"), ustar("vol/mem", "3")]],
      ["symlink escape", [ustar("vol/", "5"), ustar("vol/esc", "2", Buffer.alloc(0), outside), ustar("vol/esc/t3", "0", payload)]],
      ["hard link out", [ustar("vol/", "5"), ustar("vol/h", "1", Buffer.alloc(0), `${outside}/t4`)]],
      // A good member first: nothing of it may be written either.
      ["late", [ustar("vol/", "5"), ustar("vol/ok", "0", payload), ustar("vol/../../outside/t5", "0", payload)]],
    ];
    for (const [name, members] of hostile) {
      const archive = join(dir, `${name.replace(/ /g, "-")}.tar.zst`);
      await zstdArchive(archive, members);
      const target = join(dir, `t-${name.replace(/ /g, "-")}`);
      await mkdir(target);
      await assert.rejects(safeExtract(archive, target, { expect: {}, signal }), (err: LullError) => err.code === "LULL_E_ARCHIVE_HOSTILE" && /nothing was written/.test(err.message), name);
      assert.deepEqual(await readdir(target), [], `${name}: target left empty`);
    }
    assert.deepEqual(await readdir(outside), [], "nothing written outside");
    assert.equal((await stat(outside)).isDirectory(), true);
  });

  it("every process it starts carries env (the verifier's replica mark)", async () => {
    const seen = join(dir, "seen-env");
    const wrap = async (tool: string) => {
      const path = join(dir, `wrap-${tool}`);
      await writeFile(path, `#!/bin/sh\necho "${tool} $LULL_REPLICA" >> ${seen}\nexec ${tool} "$@"\n`, { mode: 0o755 });
      return path;
    };
    const target = join(dir, "env-target");
    await mkdir(target);
    await safeExtract(join(dir, "good.tar.zst"), target, { expect: {}, signal, env: { LULL_REPLICA: "/replica/x" }, tools: { zstd: await wrap("zstd"), tar: await wrap("tar") } });
    const lines = (await readFile(seen, "utf8")).trim().split("\n").sort();
    assert.deepEqual(lines, ["tar /replica/x", "zstd /replica/x"]);
  });

  it("refuses a truncated archive", async () => {
    const archive = join(dir, "truncated.tar.zst");
    await execa("zstd", ["-q", "-c"], { input: Buffer.concat([ustar("vol/", "5"), ustar("vol/a", "0", Buffer.from("x"))]), encoding: "buffer", stdout: { file: archive } });
    await assert.rejects(checkArchive(archive, { expect: {}, signal }), /truncated/);
  });
});
