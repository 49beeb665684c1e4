// The `btrfs` storage driver (root): each volume is a btrfs subvolume; a job takes a
// read-only snapshot of each, one after another while the stacks are stopped, at
//   <parent of volume>/.lull-snapshots/<prefix><jobId>/<volume name>
// (same file system as the volume, so `btrfs subvolume snapshot` can place it there).
import { lstat, mkdir, readdir, rmdir } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { SnapshotMode } from "@lull/proto";
import { LullError, validate } from "@lull/shared";
import type { NativeGuestConfig } from "../config.js";
import { tailLines } from "@lull/shared";
import type { SnapshotHandle, SnapshotRequest, StorageDriver, StorageDriverDeps } from "./driver.js";
import { classifyFailure } from "./failure.js";
import { removeTree } from "./remove-tree.js";

/** Directory beside each volume that holds the agent's snapshots. */
export const SNAPSHOTS_DIR = ".lull-snapshots";
/** Upper bound of one btrfs command (show, snapshot, delete); the job's signal cancels sooner. */
export const BTRFS_TIMEOUT_MS = 120_000;
/** The inode number of every btrfs subvolume's root directory (BTRFS_FIRST_FREE_OBJECTID). */
const SUBVOLUME_ROOT_INODE = 256;

function codeOf(err: unknown): unknown {
  return (err as { code?: unknown }).code;
}

async function exists(path: string): Promise<boolean> {
  return lstat(path).then(
    () => true,
    (err: unknown) => {
      if (codeOf(err) === "ENOENT") return false;
      throw err;
    },
  );
}

/** Where one job's snapshots of volumes under `volumePath`'s parent go. */
export function btrfsSnapshotDir(volumePath: string, prefix: string, jobId: string): string {
  return join(dirname(resolve(volumePath)), SNAPSHOTS_DIR, `${prefix}${jobId}`);
}

export function createBtrfsDriver(deps: StorageDriverDeps): StorageDriver {
  const { config, runner, clock } = deps;
  const log = deps.log.child({ driver: "btrfs" });

  async function deleteSubvolume(path: string, signal?: AbortSignal): Promise<void> {
    await runner.run("btrfs", ["subvolume", "delete", path], {
      timeoutMs: BTRFS_TIMEOUT_MS,
      ...(signal !== undefined ? { signal } : {}),
    });
  }

  /** Deletes the snapshots that exist among `paths`, then their (now empty) job directories. Returns what it removed. */
  async function removeSnapshots(paths: readonly string[]): Promise<{ removed: string[]; failures: string[] }> {
    const removed: string[] = [];
    const failures: string[] = [];
    for (const path of paths) {
      try {
        if (!(await exists(path))) continue;
        await deleteSubvolume(path);
        removed.push(path);
      } catch (err) {
        failures.push(`${path}: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
    for (const dir of new Set(paths.map((p) => dirname(p)))) {
      await rmdir(dir).catch((err: unknown) => {
        if (codeOf(err) !== "ENOENT") failures.push(`${dir}: ${String(err)}`);
      });
    }
    return { removed, failures };
  }

  async function checkSubvolumes(request: SnapshotRequest): Promise<void> {
    for (const volume of request.guest.volumes) {
      const show = await runner.run("btrfs", ["subvolume", "show", resolve(volume.path)], {
        signal: request.signal,
        timeoutMs: BTRFS_TIMEOUT_MS,
        reject: false,
      });
      if (show.exitCode !== 0) {
        const why = tailLines(show.stderr, 2) || `btrfs subvolume show exited with code ${show.exitCode}`;
        throw new LullError(
          "LULL_E_SNAPSHOT_FAILED",
          `guest ${request.guest.id} volume ${volume.name}: ${volume.path} is not a btrfs subvolume (${why})`,
        );
      }
    }
  }

  async function preflight(request: SnapshotRequest): Promise<void> {
    try {
      await checkSubvolumes(request);
    } catch (err) {
      throw classifyFailure(err, "LULL_E_SNAPSHOT_FAILED", `checking guest ${request.guest.id}`, request.signal);
    }
  }

  /** Only the snapshot commands: the volumes were checked by preflight, before the stacks stopped. */
  async function snapshot(request: SnapshotRequest): Promise<SnapshotHandle> {
    const { jobId, guest, signal } = request;
    validate.jobId(jobId);
    const attempted: string[] = [];
    const handle: SnapshotHandle = { jobId, mode: SnapshotMode.SNAPSHOT_MODE_SNAPSHOT, createdAt: 0, volumes: [], artifacts: [] };
    let current = "";
    try {
      for (const volume of guest.volumes) {
        await mkdir(btrfsSnapshotDir(volume.path, config.prefix, jobId), { recursive: true, mode: 0o700 });
      }
      handle.createdAt = clock.now();
      for (const volume of guest.volumes) {
        current = volume.name;
        const source = resolve(volume.path);
        const readPath = join(btrfsSnapshotDir(volume.path, config.prefix, jobId), volume.name);
        attempted.push(readPath);
        await runner.run("btrfs", ["subvolume", "snapshot", "-r", source, readPath], { signal, timeoutMs: BTRFS_TIMEOUT_MS });
        handle.volumes.push({ name: volume.name, sourcePath: volume.path, readPath });
        handle.artifacts.push(readPath);
      }
    } catch (err) {
      // Also the one in flight: an aborted `btrfs subvolume snapshot` may have finished its ioctl.
      const dirs = guest.volumes.map((v) => join(btrfsSnapshotDir(v.path, config.prefix, jobId), v.name));
      const { failures } = await removeSnapshots([...new Set([...attempted, ...dirs])]);
      if (failures.length > 0) log.error({ jobId, failures }, "snapshots not removed after a failed snapshot");
      throw classifyFailure(err, "LULL_E_SNAPSHOT_FAILED", `snapshotting guest ${guest.id} volume ${current || "-"}`, signal);
    }
    log.info({ jobId, guestId: guest.id, snapshots: handle.artifacts, createdAt: handle.createdAt }, "btrfs snapshots taken");
    return handle;
  }

  async function sweepParent(parent: string, jobId: string | undefined): Promise<{ removed: string[]; failures: string[] }> {
    const base = join(parent, SNAPSHOTS_DIR);
    const entries = await readdir(base).catch((err: unknown) => {
      if (codeOf(err) === "ENOENT" || codeOf(err) === "ENOTDIR") return [] as string[];
      throw err;
    });
    const wanted = (n: string) => (jobId !== undefined ? n === `${config.prefix}${jobId}` : n.startsWith(config.prefix));
    const removed: string[] = [];
    const failures: string[] = [];
    for (const name of entries.filter(wanted)) {
      const jobDir = join(base, name);
      if (!(await lstat(jobDir)).isDirectory()) {
        if (await removeTree(jobDir)) removed.push(jobDir);
        continue;
      }
      const children = await readdir(jobDir);
      const subvolumes: string[] = [];
      for (const child of children) {
        const path = join(jobDir, child);
        const st = await lstat(path);
        if (st.isDirectory() && st.ino === SUBVOLUME_ROOT_INODE) subvolumes.push(path);
        else if (await removeTree(path)) removed.push(path);
      }
      const result = await removeSnapshots(subvolumes);
      removed.push(...result.removed);
      failures.push(...result.failures);
      // removeSnapshots already removed the job dir when it held snapshots.
      await rmdir(jobDir).then(
        () => removed.push(jobDir),
        (err: unknown) => (codeOf(err) === "ENOENT" ? removed.push(jobDir) : failures.push(`${jobDir}: ${String(err)}`)),
      );
    }
    // At start-up (no job named) nothing is running: the empty container goes too.
    if (jobId === undefined) await rmdir(base).catch(() => undefined);
    return { removed, failures };
  }

  return {
    kind: "btrfs",
    modeFor: () => SnapshotMode.SNAPSHOT_MODE_SNAPSHOT,
    preflight,
    snapshot,

    async release(handle: SnapshotHandle): Promise<void> {
      const { removed, failures } = await removeSnapshots(handle.artifacts);
      if (removed.length > 0) log.info({ jobId: handle.jobId, removed }, "btrfs snapshots deleted");
      if (failures.length > 0) {
        throw new LullError("LULL_E_CLEANUP_FAILED", `btrfs snapshots not removed: ${failures.join("; ")}`);
      }
    },

    async sweep(guests: readonly NativeGuestConfig[], options = {}): Promise<string[]> {
      if (options.jobId !== undefined) validate.jobId(options.jobId);
      const parents = new Set(guests.flatMap((g) => g.volumes.map((v) => dirname(resolve(v.path)))));
      const removed: string[] = [];
      const failures: string[] = [];
      for (const parent of parents) {
        const result = await sweepParent(parent, options.jobId);
        removed.push(...result.removed);
        failures.push(...result.failures);
      }
      if (removed.length > 0) log.warn({ removed }, "leftover btrfs snapshots swept");
      if (failures.length > 0) {
        throw new LullError("LULL_E_CLEANUP_FAILED", `btrfs sweep left: ${failures.join("; ")}`);
      }
      return removed;
    },
  };
}
