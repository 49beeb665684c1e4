// The `dir` storage driver: works on any file system, needs no root.
//   COPY: while the stacks are stopped, `cp -a` each volume into
//         <stagingDir>/<prefix><jobId>/<volume name> (modes, times, symlinks, owners when root).
//   NONE: nothing is created; the archive reads the live paths (the stacks stay stopped until the end).
import { mkdir, readdir, realpath, stat } from "node:fs/promises";
import { join } from "node:path";
import { SnapshotMode } from "@lull/proto";
import { LullError, validate } from "@lull/shared";
import { snapshotKind, type NativeGuestConfig } from "../config.js";
import type { SnapshotHandle, SnapshotRequest, StorageDriver, StorageDriverDeps } from "./driver.js";
import { classifyFailure } from "./failure.js";
import { removeTree } from "./remove-tree.js";

/** Upper bound of one volume's copy; the job's signal cancels it sooner. */
export const DIR_COPY_TIMEOUT_MS = 12 * 60 * 60 * 1000;

function codeOf(err: unknown): unknown {
  return (err as { code?: unknown }).code;
}

/** The staging directory of one job. */
export function stagingDirOf(stagingDir: string, prefix: string, jobId: string): string {
  return join(stagingDir, `${prefix}${jobId}`);
}

/** Each volume's path must be an existing directory; returns the resolved paths (symlinks followed). */
async function resolveVolumes(guest: NativeGuestConfig): Promise<{ name: string; path: string; real: string }[]> {
  const resolved = [];
  for (const volume of guest.volumes) {
    const where = `guest ${guest.id} volume ${volume.name}: ${volume.path}`;
    const real = await realpath(volume.path).catch((err: unknown) => {
      throw new LullError("LULL_E_SNAPSHOT_FAILED", `${where} ${codeOf(err) === "ENOENT" ? "does not exist" : String(err)}`, {
        cause: err,
      });
    });
    if (!(await stat(real)).isDirectory()) {
      throw new LullError("LULL_E_SNAPSHOT_FAILED", `${where} is not a directory`);
    }
    resolved.push({ name: volume.name, path: volume.path, real });
  }
  return resolved;
}

export function createDirDriver(deps: StorageDriverDeps): StorageDriver {
  const { config, runner, clock } = deps;
  const log = deps.log.child({ driver: "dir" });

  function modeFor(guest: NativeGuestConfig): SnapshotMode {
    return snapshotKind(guest) === "none" ? SnapshotMode.SNAPSHOT_MODE_NONE : SnapshotMode.SNAPSHOT_MODE_COPY;
  }

  async function copyVolumes(request: SnapshotRequest, volumes: { name: string; path: string; real: string }[]) {
    const { jobId, guest, signal } = request;
    const target = stagingDirOf(config.stagingDir, config.prefix, jobId);
    await mkdir(config.stagingDir, { recursive: true, mode: 0o700 });
    await mkdir(target, { mode: 0o700 }).catch((err: unknown) => {
      throw new LullError("LULL_E_SNAPSHOT_FAILED", `staging directory ${target} cannot be created: ${String(err)}`, {
        cause: err,
      });
    });
    const handle: SnapshotHandle = {
      jobId,
      mode: SnapshotMode.SNAPSHOT_MODE_COPY,
      createdAt: clock.now(),
      volumes: [],
      artifacts: [target],
    };
    let current = "";
    try {
      for (const volume of volumes) {
        current = volume.name;
        const readPath = join(target, volume.name);
        // -a: recursive, symlinks as symlinks, modes, times, owners (root), xattrs; -T: the target is the copy itself.
        await runner.run("cp", ["-a", "--reflink=auto", "-T", "--", volume.real, readPath], {
          signal,
          timeoutMs: DIR_COPY_TIMEOUT_MS,
        });
        handle.volumes.push({ name: volume.name, sourcePath: volume.path, readPath });
      }
    } catch (err) {
      await removeTree(target).catch((cleanupErr: unknown) =>
        log.error({ jobId, path: target, err: cleanupErr }, "staging directory not removed after a failed copy"),
      );
      throw classifyFailure(err, "LULL_E_SNAPSHOT_FAILED", `copying guest ${guest.id} volume ${current}`, signal);
    }
    log.info({ jobId, guestId: guest.id, path: target, volumes: volumes.length }, "volumes copied to staging");
    return handle;
  }

  return {
    kind: "dir",
    modeFor,

    async snapshot(request: SnapshotRequest): Promise<SnapshotHandle> {
      validate.jobId(request.jobId);
      const volumes = await resolveVolumes(request.guest);
      if (modeFor(request.guest) === SnapshotMode.SNAPSHOT_MODE_COPY) return copyVolumes(request, volumes);
      return {
        jobId: request.jobId,
        mode: SnapshotMode.SNAPSHOT_MODE_NONE,
        createdAt: clock.now(),
        volumes: volumes.map((v) => ({ name: v.name, sourcePath: v.path, readPath: v.path })),
        artifacts: [],
      };
    },

    async release(handle: SnapshotHandle): Promise<void> {
      const failures: string[] = [];
      for (const path of handle.artifacts) {
        try {
          if (await removeTree(path)) log.info({ jobId: handle.jobId, path }, "staging directory removed");
        } catch (err) {
          failures.push(`${path}: ${String(err)}`);
        }
      }
      if (failures.length > 0) {
        throw new LullError("LULL_E_CLEANUP_FAILED", `staging not removed: ${failures.join("; ")}`);
      }
    },

    async sweep(_guests, options = {}): Promise<string[]> {
      const entries = await readdir(config.stagingDir).catch((err: unknown) => {
        if (codeOf(err) === "ENOENT") return [] as string[];
        throw err;
      });
      const wanted = (name: string) =>
        options.jobId !== undefined ? name === `${config.prefix}${options.jobId}` : name.startsWith(config.prefix);
      const removed: string[] = [];
      for (const name of entries.filter(wanted)) {
        const path = join(config.stagingDir, name);
        if (await removeTree(path)) removed.push(path);
      }
      if (removed.length > 0) log.warn({ removed }, "leftover staging directories swept");
      return removed;
    },
  };
}
