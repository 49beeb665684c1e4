// Test helpers: a sample volume tree with the things a backup must keep (modes, times,
// symlinks, odd names, empty directories), a comparable listing of a tree, and the
// operator's restore command (`tar --zstd -xf <file> -C <dir>`).
import { createHash, randomBytes } from "node:crypto";
import { chmod, lstat, mkdir, readFile, readdir, readlink, symlink, utimes, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { execa } from "execa";

export interface TreeEntry {
  path: string;
  type: "file" | "dir" | "symlink" | "other";
  mode: number;
  mtimeSec: number;
  size: number;
  sha256?: string;
  target?: string;
}

/** Fills `root` (created if missing) with a small tree; `tag` makes the contents differ between trees. */
export async function makeSampleTree(root: string, tag = "v1"): Promise<void> {
  await mkdir(join(root, "nested", "deeper"), { recursive: true });
  await mkdir(join(root, "empty-dir"), { recursive: true });
  await writeFile(join(root, "config.yml"), `name: ${tag}\n`);
  await writeFile(join(root, "nested", "deeper", "data.bin"), createHash("sha512").update(tag).digest());
  await writeFile(join(root, "with space & 'quote'.txt"), `odd name ${tag}\n`);
  await writeFile(join(root, "secret.key"), `key-${tag}\n`);
  await chmod(join(root, "secret.key"), 0o600);
  await writeFile(join(root, "run.sh"), "#!/bin/sh\necho hi\n");
  await chmod(join(root, "run.sh"), 0o755);
  await symlink("config.yml", join(root, "link-relative"));
  await symlink("/etc/hostname", join(root, "link-absolute"));
  await symlink("does-not-exist", join(root, "link-dangling"));
  await chmod(join(root, "nested", "deeper"), 0o750);
  const past = new Date("2024-02-29T12:34:56Z");
  await utimes(join(root, "config.yml"), past, past);
  await utimes(join(root, "nested", "deeper", "data.bin"), past, past);
}

/** Writes `size` bytes of incompressible (random) data. */
export async function writeRandomFile(path: string, size: number): Promise<void> {
  await writeFile(path, randomBytes(size));
}

/** Every entry under `root` (relative paths, sorted), with what a restore must reproduce. */
export async function listTree(root: string): Promise<TreeEntry[]> {
  const entries: TreeEntry[] = [];
  async function walk(rel: string): Promise<void> {
    const full = join(root, rel);
    const st = await lstat(full);
    const base = { path: rel || ".", mode: st.mode & 0o7777, mtimeSec: Math.floor(st.mtimeMs / 1000) };
    if (st.isSymbolicLink()) {
      entries.push({ ...base, type: "symlink", size: 0, target: await readlink(full) });
    } else if (st.isFile()) {
      const sha256 = createHash("sha256").update(await readFile(full)).digest("hex");
      entries.push({ ...base, type: "file", size: st.size, sha256 });
    } else if (st.isDirectory()) {
      // A directory's mtime changes when anything is created in it during a restore; compare the rest.
      entries.push({ ...base, type: "dir", size: 0, mtimeSec: 0 });
      for (const name of (await readdir(full)).sort()) await walk(rel ? join(rel, name) : name);
    } else {
      entries.push({ ...base, type: "other", size: 0 });
    }
  }
  await walk("");
  return entries;
}

/** The restore an operator runs. */
export async function extractArchive(archivePath: string, into: string): Promise<void> {
  await mkdir(into, { recursive: true });
  await execa("tar", ["--zstd", "-xf", archivePath, "-C", into], { shell: false, timeout: 60_000 });
}

/** Names in the archive, as `tar -t` lists them. */
export async function listArchive(archivePath: string): Promise<string[]> {
  const { stdout } = await execa("tar", ["--zstd", "-tf", archivePath], { shell: false, timeout: 60_000 });
  return stdout.split("\n").filter((l) => l.length > 0);
}
