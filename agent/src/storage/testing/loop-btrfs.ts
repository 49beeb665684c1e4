// Test helper: a real btrfs file system on a loop-mounted sparse image in a temp dir
// (root and btrfs-progs needed; CI has both). Missing either is a test failure with a
// clear message, never a silent skip.
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execa } from "execa";

export interface LoopMount {
  /** Mount point of the file system. */
  path: string;
  dispose(): Promise<void>;
}

const COMMAND_TIMEOUT_MS = 60_000;

async function run(file: string, args: string[]): Promise<string> {
  const result = await execa(file, args, { shell: false, reject: false, timeout: COMMAND_TIMEOUT_MS });
  if (result.failed) {
    throw new Error(`test setup: ${[file, ...args].join(" ")} failed (${result.shortMessage}); these tests need root and btrfs-progs`);
  }
  return result.stdout;
}

function requireRoot(): void {
  if (process.getuid?.() !== 0) {
    throw new Error("test setup: these tests need root (loop mounts, btrfs snapshots); run them as root as CI does");
  }
}

async function loopMount(kind: string, sizeArgs: { image?: string; tmpfsSize?: string }): Promise<LoopMount> {
  requireRoot();
  const dir = await mkdtemp(join(tmpdir(), `lull-${kind}-`));
  const path = join(dir, "mnt");
  await mkdir(path);
  let mounted = false;
  const dispose = async () => {
    if (mounted) await run("umount", [path]).catch(() => run("umount", ["-l", path]));
    mounted = false;
    await rm(dir, { recursive: true, force: true });
  };
  try {
    if (sizeArgs.tmpfsSize !== undefined) {
      await run("mount", ["-t", "tmpfs", "-o", `size=${sizeArgs.tmpfsSize}`, "tmpfs", path]);
    } else {
      const image = join(dir, "image");
      await run("truncate", ["-s", sizeArgs.image ?? "512M", image]);
      await run("mkfs.btrfs", ["-q", image]);
      await run("mount", ["-o", "loop", image, path]);
    }
    mounted = true;
    return { path, dispose };
  } catch (err) {
    await dispose().catch(() => undefined);
    throw err;
  }
}

/** A fresh btrfs file system (512 MiB sparse image, loop-mounted). */
export function createLoopBtrfs(size = "512M"): Promise<LoopMount> {
  return loopMount("btrfs", { image: size });
}

/** A tiny tmpfs, to run a file system out of space. */
export function createTinyTmpfs(size = "1M"): Promise<LoopMount> {
  return loopMount("tmpfs", { tmpfsSize: size });
}

export async function createSubvolume(path: string): Promise<void> {
  await run("btrfs", ["subvolume", "create", path]);
}

/** `ro=true` / `ro=false` of a subvolume. */
export async function readOnlyProperty(path: string): Promise<string> {
  return (await run("btrfs", ["property", "get", "-ts", path, "ro"])).trim();
}
