// A real btrfs file system on a loop-mounted image file, for tests and the benchmark that need
// real snapshots. Needs root, btrfs-progs and loop devices; `loopBtrfsUnavailable()` says why not.
import { existsSync } from "node:fs";
import { mkdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { execa } from "execa";
import { sleep } from "./temp.js";

const COMMAND_TIMEOUT_MS = 60_000;

async function run(file: string, args: string[]): Promise<string> {
  const result = await execa(file, args, { shell: false, reject: false, timeout: COMMAND_TIMEOUT_MS, stdin: "ignore" });
  if (result.exitCode !== 0) {
    throw new Error(`${[file, ...args].join(" ")} exited ${result.exitCode ?? result.signal}: ${String(result.stderr).trim()}`);
  }
  return String(result.stdout);
}

/** Undefined when a loop-mounted btrfs can be made here; otherwise the reason it cannot. */
export async function loopBtrfsUnavailable(): Promise<string | undefined> {
  if (process.getuid?.() !== 0) return "needs root (mount -o loop)";
  if (!existsSync("/dev/loop-control")) return "no loop devices (/dev/loop-control missing)";
  const probe = await execa("mkfs.btrfs", ["--version"], { shell: false, reject: false, timeout: 10_000 });
  if (probe.exitCode !== 0) return "mkfs.btrfs not found (apt-get install btrfs-progs)";
  return undefined;
}

export interface LoopBtrfs {
  /** The image file backing the file system. */
  readonly image: string;
  /** Where it is mounted. */
  readonly mountPoint: string;
  /** Creates a subvolume at `<mountPoint>/<relPath>` and returns its absolute path. */
  createSubvolume(relPath: string): Promise<string>;
  /** Paths of every subvolume (absolute), from `btrfs subvolume list`. */
  listSubvolumes(): Promise<string[]>;
  /** Unmounts (retrying while busy) and deletes the image. Safe to call twice. */
  teardown(): Promise<void>;
}

export interface LoopBtrfsOptions {
  /** Directory for the image file and the mount point. */
  dir: string;
  /** Size of the sparse image; default 1 GiB (btrfs needs at least ~115 MiB). */
  sizeBytes?: number;
}

export async function mountLoopBtrfs(options: LoopBtrfsOptions): Promise<LoopBtrfs> {
  const image = join(options.dir, "btrfs.img");
  const mountPoint = join(options.dir, "mnt");
  await mkdir(mountPoint, { recursive: true });
  await run("truncate", ["-s", String(options.sizeBytes ?? 1024 ** 3), image]);
  await run("mkfs.btrfs", ["-q", image]);
  await run("mount", ["-o", "loop", image, mountPoint]);
  let mounted = true;

  return {
    image,
    mountPoint,
    async createSubvolume(relPath) {
      const path = join(mountPoint, relPath);
      await run("btrfs", ["subvolume", "create", path]);
      return path;
    },
    async listSubvolumes() {
      const out = await run("btrfs", ["subvolume", "list", "-o", mountPoint]);
      return out
        .split("\n")
        .map((l) => /\spath (.+)$/.exec(l)?.[1])
        .filter((p): p is string => p !== undefined)
        .map((p) => join(mountPoint, p));
    },
    async teardown() {
      if (mounted) {
        for (let attempt = 1; ; attempt++) {
          const r = await execa("umount", [mountPoint], { shell: false, reject: false, timeout: COMMAND_TIMEOUT_MS });
          if (r.exitCode === 0) break;
          if (attempt >= 10) throw new Error(`umount ${mountPoint} failed: ${String(r.stderr).trim()}`);
          await sleep(300);
        }
        mounted = false;
      }
      await rm(image, { force: true });
    },
  };
}
