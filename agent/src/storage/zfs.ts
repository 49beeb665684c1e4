// The `zfs` storage driver (root, Proxmox ZFS pools). A volume's path is either the mountpoint
// of a filesystem dataset (CT subvol: `/rpool/data/subvol-101-disk-0`) or a zvol device
// (`/dev/zvol/rpool/data/vm-100-disk-0`). A job takes one `zfs snapshot a@s b@s …` PER POOL — a
// multi-argument snapshot is atomic only within one pool (lzc_snapshot in libzfs_core.c: the
// kernel answers EXDEV for datasets of several pools) — with s = <prefix><jobId> (never `vzdump`).
// A guest on one pool gets one atomic point in time; a guest on several gets one per pool, taken
// one after the other while its stacks stay quiesced, and the job records that (handle.notes).
// Read path: `<mountpoint>/.zfs/snapshot/<s>` for filesystems. A zvol is refused in preflight: the
// native engine archives with tar, which stores a block device as a device node, not its data
// (its snapshot device `/dev/zvol/<ds>@<s>` would exist only with snapdev=visible anyway).
// release: `zfs destroy <ds>@<s>` per dataset; sweep: every snapshot whose name after `@` starts
// with the prefix, node-wide.
import { SnapshotMode } from "@lull/proto";
import { LullError, validate } from "@lull/shared";
import type { NativeGuestConfig } from "../config.js";
import type { CommandOptions } from "@lull/shared";
import type { SnapshotHandle, SnapshotRequest, StorageDriver, StorageDriverDeps } from "./driver.js";
import { classifyFailure } from "./failure.js";

export interface ZfsOptions {
  commandTimeoutMs: number;
}

interface Dataset {
  name: string;
  type: "filesystem" | "volume";
  mountpoint: string;
}

const DATASET = /^[A-Za-z0-9][A-Za-z0-9_.:/-]*$/;

export function parseDatasets(stdout: string): Dataset[] {
  return stdout
    .split("\n")
    .filter((l) => l.trim() !== "")
    .map((l) => {
      const [name = "", type = "", mountpoint = ""] = l.split("\t");
      return { name, type: type === "volume" ? "volume" : "filesystem", mountpoint } as Dataset;
    });
}

/** Which dataset a volume path names: a zvol device or a filesystem's mountpoint. */
export function datasetForPath(path: string, datasets: readonly Dataset[]): Dataset | undefined {
  const clean = path.replace(/\/+$/, "");
  if (clean.startsWith("/dev/zvol/")) {
    const name = clean.slice("/dev/zvol/".length);
    return datasets.find((d) => d.type === "volume" && d.name === name);
  }
  return datasets.find((d) => d.type === "filesystem" && d.mountpoint === clean);
}

/** The pool of a dataset: its first component. */
export function poolOf(dataset: string): string {
  return dataset.split("/")[0]!;
}

/** Snapshot names grouped by pool, in the order the pools first appear. */
export function groupByPool(names: readonly string[]): string[][] {
  const groups = new Map<string, string[]>();
  for (const name of names) {
    const pool = poolOf(name.split("@")[0]!);
    const group = groups.get(pool) ?? [];
    group.push(name);
    groups.set(pool, group);
  }
  return [...groups.values()];
}

function zvolRefusal(volume: string, ds: Dataset): LullError {
  return new LullError(
    "LULL_E_CONFIG_INVALID",
    `volume ${volume} is the zvol ${ds.name} (a block device): the native engine archives files with tar, which stores a block device as a device node and not its data — back up this VM with the vzdump engine (engine: vzdump), or list the filesystem datasets to back up instead`,
  );
}

export function zfsSnapshotName(prefix: string, jobId: string): string {
  return `${prefix}${jobId}`;
}

export function createZfsDriver(deps: StorageDriverDeps, overrides: Partial<ZfsOptions> = {}): StorageDriver {
  const options: ZfsOptions = { commandTimeoutMs: deps.config.pve.commandTimeoutMs, ...overrides };
  const { config, runner, clock } = deps;
  const log = deps.log.child({ driver: "zfs" });
  const opts = (signal?: AbortSignal, extra: CommandOptions = {}): CommandOptions => ({
    timeoutMs: options.commandTimeoutMs,
    ...(signal !== undefined ? { signal } : {}),
    ...extra,
  });

  /** Destroys snapshots; a missing one counts as destroyed. */
  async function destroy(snapshots: readonly string[], signal?: AbortSignal): Promise<{ removed: string[]; failures: string[] }> {
    const removed: string[] = [];
    const failures: string[] = [];
    for (const snap of snapshots) {
      const r = await runner.run("zfs", ["destroy", snap], opts(signal, { reject: false }));
      if (r.exitCode === 0) removed.push(snap);
      else if (!/could not find any snapshots to destroy|dataset does not exist/.test(r.stderr)) {
        failures.push(`zfs destroy ${snap} exited with code ${r.exitCode}: ${r.stderr.trim()}`);
      }
    }
    return { removed, failures };
  }

  /** The dataset of each volume; a path without one, or a zvol, is refused. */
  async function resolveTargets(request: SnapshotRequest) {
    const { guest, signal } = request;
    const listed = await runner.run("zfs", ["list", "-H", "-p", "-o", "name,type,mountpoint", "-t", "filesystem,volume"], opts(signal));
    const datasets = parseDatasets(listed.stdout);
    return guest.volumes.map((v) => {
      const ds = datasetForPath(v.path, datasets);
      if (!ds || !DATASET.test(ds.name)) {
        throw new LullError("LULL_E_SNAPSHOT_FAILED", `volume ${v.name}: no ZFS dataset is mounted at (or is the zvol of) ${v.path}`);
      }
      if (ds.type === "volume") throw zvolRefusal(v.name, ds);
      return { volume: v, ds };
    });
  }

  async function snapshot(request: SnapshotRequest): Promise<SnapshotHandle> {
    const { jobId, guest, signal } = request;
    validate.jobId(jobId);
    const snapName = zfsSnapshotName(config.prefix, jobId);
    const handle: SnapshotHandle = { jobId, mode: SnapshotMode.SNAPSHOT_MODE_SNAPSHOT, createdAt: 0, volumes: [], artifacts: [] };
    const attempted: string[] = [];
    try {
      const targets = await resolveTargets(request);
      const names = [...new Set(targets.map((t) => `${t.ds.name}@${snapName}`))];
      const groups = groupByPool(names);
      const takenAt: number[] = [];
      for (const group of groups) {
        attempted.push(...group);
        takenAt.push(clock.now());
        await runner.run("zfs", ["snapshot", ...group], opts(signal));
        handle.artifacts.push(...group);
      }
      handle.createdAt = takenAt[0]!;
      if (groups.length > 1) {
        const pools = groups.map((g) => poolOf(g[0]!));
        const spread = takenAt.at(-1)! - takenAt[0]!;
        handle.notes = [
          `guest ${guest.id} spans ZFS pools ${pools.join(", ")}: each pool's volumes were snapshotted atomically together, the pools one after the other (${spread} ms from the first to the last) — not one point in time across pools; with its stacks quiesced meanwhile the copy is consistent, without (crash-consistent) each pool's volumes are from a different moment`,
        ];
      }
      for (const { volume, ds } of targets) {
        handle.volumes.push({ name: volume.name, sourcePath: volume.path, readPath: `${ds.mountpoint}/.zfs/snapshot/${snapName}` });
      }
    } catch (err) {
      // `zfs snapshot` is all-or-nothing, but an aborted call may still have completed.
      const { failures } = await destroy(attempted);
      if (failures.length > 0) log.error({ jobId, failures }, "zfs snapshots not removed after a failed snapshot");
      throw classifyFailure(err, "LULL_E_SNAPSHOT_FAILED", `snapshotting guest ${guest.id}`, signal);
    }
    log.info({ jobId, guestId: guest.id, snapshots: handle.artifacts, createdAt: handle.createdAt }, "zfs snapshots taken");
    return handle;
  }

  return {
    kind: "zfs",
    modeFor: () => SnapshotMode.SNAPSHOT_MODE_SNAPSHOT,
    async preflight(request: SnapshotRequest): Promise<void> {
      await resolveTargets(request);
    },
    snapshot,
    async release(handle: SnapshotHandle, signal?: AbortSignal): Promise<void> {
      const { removed, failures } = await destroy(handle.artifacts, signal);
      if (removed.length > 0) log.info({ jobId: handle.jobId, removed }, "zfs snapshots destroyed");
      if (failures.length > 0) throw new LullError("LULL_E_CLEANUP_FAILED", `zfs snapshots not removed: ${failures.join("; ")}`);
    },
    async sweep(_guests: readonly NativeGuestConfig[], sweepOptions: { jobId?: string; signal?: AbortSignal } = {}): Promise<string[]> {
      const { jobId, signal } = sweepOptions;
      if (jobId !== undefined) validate.jobId(jobId);
      const listed = await runner.run("zfs", ["list", "-H", "-p", "-t", "snapshot", "-o", "name"], opts(signal));
      const ours = listed.stdout
        .split("\n")
        .map((l) => l.trim())
        .filter((name) => {
          const at = name.indexOf("@");
          if (at < 0) return false;
          const snap = name.slice(at + 1);
          return jobId !== undefined ? snap === zfsSnapshotName(config.prefix, jobId) : snap.startsWith(config.prefix);
        });
      const { removed, failures } = await destroy(ours, signal);
      if (removed.length > 0) log.warn({ removed }, "leftover zfs snapshots swept");
      if (failures.length > 0) throw new LullError("LULL_E_CLEANUP_FAILED", `zfs sweep left: ${failures.join("; ")}`);
      return removed;
    },
  };
}
