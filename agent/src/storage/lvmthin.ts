// The `lvmthin` storage driver (root, Proxmox LVM-thin): each volume's path is its device,
// `/dev/<vg>/<lv>`, a thin volume. A job
//   1. reads the origins with lvs (must be thin volumes) and guards their pools (data%/metadata%),
//   2. per volume: `lvcreate -n <prefix><lv>-<jobId> -pr -s <vg>/<lv>` (a read-only thin snapshot,
//      activation-skip flag set), then `lvchange -ay -K <vg>/<snap>`,
//   3. with a mount dir (container volumes for the native engine's tar): `mount -o ro,noload
//      /dev/<vg>/<snap> <mountDir>/<prefix><jobId>/<volume>`; the read path is that directory,
//      otherwise the device.
// release: umount, `lvremove -f`; sweep: the agent's mounts under mountDir, then every LV whose name
// starts with the prefix (never `snap_*_vzdump`, which belongs to vzdump).
import { mkdir, readdir, rmdir } from "node:fs/promises";
import { join } from "node:path";
import { SnapshotMode } from "@lull/proto";
import { LullError, validate } from "@lull/shared";
import type { NativeGuestConfig } from "../config.js";
import { mountReadOnly, mountsBelow, readMountTable, unmount } from "./mounts.js";
import { guardThinPools, LVM_ENV, readLvs, type ThinPoolLimits } from "./thin-pool.js";
import type { SnapshotHandle, SnapshotRequest, StorageDriver, StorageDriverDeps } from "./driver.js";
import { classifyFailure } from "./failure.js";

export interface LvmThinOptions {
  thinPool: ThinPoolLimits;
  /** Mount snapshots read-only here (per job: <mountDir>/<prefix><jobId>/<volume>); undefined: read path is the device. */
  mountDir: string | undefined;
  mountOptions: string;
  mountsFile: string;
  commandTimeoutMs: number;
}

const LV_NAME = /^[A-Za-z0-9+_.][A-Za-z0-9+_.-]*$/;

/** `/dev/pve/vm-101-disk-0` → { vg: "pve", lv: "vm-101-disk-0" }. */
export function parseLvDevice(path: string): { vg: string; lv: string } {
  const m = /^\/dev\/([^/]+)\/([^/]+)$/.exec(path);
  if (!m || m[1] === "mapper" || m[1] === "zvol" || !LV_NAME.test(m[1]!) || !LV_NAME.test(m[2]!)) {
    throw new LullError("LULL_E_CONFIG_INVALID", `volume path ${path} is not an LVM device path /dev/<vg>/<lv>`);
  }
  return { vg: m[1]!, lv: m[2]! };
}

export function lvmSnapshotName(prefix: string, lv: string, jobId: string): string {
  return `${prefix}${lv}-${jobId}`;
}

/** Options not given come from the agent's `pve` settings in deps.config, except mountDir (none: read the device). */
export function createLvmThinDriver(deps: StorageDriverDeps, overrides: Partial<LvmThinOptions> = {}): StorageDriver {
  const pve = deps.config.pve;
  const options: LvmThinOptions = {
    thinPool: pve.thinPool,
    mountDir: undefined,
    mountOptions: pve.mountOptions,
    mountsFile: pve.mountsFile,
    commandTimeoutMs: pve.commandTimeoutMs,
    ...overrides,
  };
  const { config, runner, clock } = deps;
  const log = deps.log.child({ driver: "lvmthin" });
  const timeoutMs = options.commandTimeoutMs;
  const jobMountDir = (jobId: string) => (options.mountDir ? join(options.mountDir, `${config.prefix}${jobId}`) : undefined);

  async function removeArtifacts(artifacts: readonly string[], jobId: string, signal?: AbortSignal): Promise<{ removed: string[]; failures: string[] }> {
    const removed: string[] = [];
    const failures: string[] = [];
    for (const artifact of [...artifacts].reverse()) {
      try {
        if (artifact.startsWith("mount:")) {
          const dir = artifact.slice("mount:".length);
          await unmount(runner, dir, { timeoutMs, signal });
          await rmdir(dir).catch(() => undefined);
        } else if (artifact.startsWith("lv:")) {
          const lv = artifact.slice("lv:".length);
          const r = await runner.run("lvremove", ["-f", lv], { env: LVM_ENV, timeoutMs, reject: false, ...(signal ? { signal } : {}) });
          if (r.exitCode !== 0 && !/Failed to find logical volume/.test(r.stderr)) {
            throw new LullError("LULL_E_CLEANUP_FAILED", `lvremove -f ${lv} exited with code ${r.exitCode}: ${r.stderr.trim()}`);
          }
        }
        removed.push(artifact);
      } catch (err) {
        failures.push(`${artifact}: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
    const dir = jobMountDir(jobId);
    if (dir) await rmdir(dir).catch(() => undefined);
    return { removed, failures };
  }

  async function snapshot(request: SnapshotRequest): Promise<SnapshotHandle> {
    const { jobId, guest, signal } = request;
    validate.jobId(jobId);
    const volumes = guest.volumes.map((v) => ({ ...v, ...parseLvDevice(v.path) }));
    const handle: SnapshotHandle = { jobId, mode: SnapshotMode.SNAPSHOT_MODE_SNAPSHOT, createdAt: 0, volumes: [], artifacts: [] };
    let current = "-";
    try {
      const origins = await readLvs(runner, volumes.map((v) => `${v.vg}/${v.lv}`), { signal, timeoutMs });
      const pools = volumes.map((v) => {
        const row = origins.find((r) => r.vg === v.vg && r.name === v.lv);
        if (!row || row.attr[0] !== "V" || row.pool === "") {
          throw new LullError("LULL_E_SNAPSHOT_FAILED", `volume ${v.name}: ${v.vg}/${v.lv} is not a thin volume (lv_attr ${row?.attr ?? "?"})`);
        }
        return { vg: v.vg, pool: row.pool };
      });
      const usages = await guardThinPools(runner, pools, options.thinPool, { signal, timeoutMs });
      log.info({ jobId, pools: usages }, "thin pools checked");
      handle.createdAt = clock.now();
      for (const v of volumes) {
        current = v.name;
        const snap = lvmSnapshotName(config.prefix, v.lv, jobId);
        handle.artifacts.push(`lv:${v.vg}/${snap}`);
        await runner.run("lvcreate", ["-n", snap, "-pr", "-s", `${v.vg}/${v.lv}`], { env: LVM_ENV, signal, timeoutMs });
        await runner.run("lvchange", ["-ay", "-K", `${v.vg}/${snap}`], { env: LVM_ENV, signal, timeoutMs });
        let readPath = `/dev/${v.vg}/${snap}`;
        const dir = jobMountDir(jobId);
        if (dir) {
          const target = join(dir, v.name);
          await mkdir(target, { recursive: true, mode: 0o700 });
          handle.artifacts.push(`mount:${target}`);
          await mountReadOnly(runner, readPath, target, options.mountOptions, { signal, timeoutMs });
          readPath = target;
        }
        handle.volumes.push({ name: v.name, sourcePath: v.path, readPath });
      }
    } catch (err) {
      const { failures } = await removeArtifacts(handle.artifacts, jobId);
      if (failures.length > 0) log.error({ jobId, failures }, "lvm snapshots not removed after a failed snapshot");
      throw classifyFailure(err, "LULL_E_SNAPSHOT_FAILED", `snapshotting guest ${guest.id} volume ${current}`, signal);
    }
    log.info({ jobId, guestId: guest.id, snapshots: handle.artifacts, createdAt: handle.createdAt }, "lvm thin snapshots taken");
    return handle;
  }

  async function sweep(_guests: readonly NativeGuestConfig[], sweepOptions: { jobId?: string; signal?: AbortSignal } = {}): Promise<string[]> {
    const { jobId, signal } = sweepOptions;
    if (jobId !== undefined) validate.jobId(jobId);
    const artifacts: string[] = [];
    if (options.mountDir) {
      const table = await readMountTable(options.mountsFile);
      for (const m of mountsBelow(table, options.mountDir)) {
        const first = m.target.slice(options.mountDir.replace(/\/+$/, "").length + 1).split("/")[0] ?? "";
        const wanted = jobId !== undefined ? first === `${config.prefix}${jobId}` : first.startsWith(config.prefix);
        if (wanted) artifacts.push(`mount:${m.target}`);
      }
    }
    const rows = await readLvs(runner, [], { signal, timeoutMs });
    for (const row of rows) {
      const ours = jobId !== undefined ? row.name.startsWith(config.prefix) && row.name.endsWith(`-${jobId}`) : row.name.startsWith(config.prefix);
      if (ours && row.origin !== "") artifacts.push(`lv:${row.vg}/${row.name}`);
    }
    // Unmount before removing: removeArtifacts walks the list backwards.
    const ordered = [...artifacts.filter((a) => a.startsWith("lv:")), ...artifacts.filter((a) => a.startsWith("mount:"))];
    const { removed, failures } = await removeArtifacts(ordered, jobId ?? "", signal);
    if (options.mountDir && jobId === undefined) await rmdirPrefixed(options.mountDir, config.prefix);
    if (removed.length > 0) log.warn({ removed }, "leftover lvm snapshots swept");
    if (failures.length > 0) throw new LullError("LULL_E_CLEANUP_FAILED", `lvm sweep left: ${failures.join("; ")}`);
    return removed;
  }

  return {
    kind: "lvmthin",
    modeFor: () => SnapshotMode.SNAPSHOT_MODE_SNAPSHOT,
    snapshot,
    async release(handle: SnapshotHandle, signal?: AbortSignal): Promise<void> {
      const { removed, failures } = await removeArtifacts(handle.artifacts, handle.jobId, signal);
      if (removed.length > 0) log.info({ jobId: handle.jobId, removed }, "lvm thin snapshots removed");
      if (failures.length > 0) throw new LullError("LULL_E_CLEANUP_FAILED", `lvm snapshots not removed: ${failures.join("; ")}`);
    },
    sweep,
  };
}

/** Removes empty `<prefix>*` job directories under the mount dir (after their mounts are gone). */
async function rmdirPrefixed(mountDir: string, prefix: string): Promise<void> {
  const entries = await readdir(mountDir).catch(() => [] as string[]);
  for (const name of entries.filter((n) => n.startsWith(prefix))) {
    const jobDir = join(mountDir, name);
    for (const child of await readdir(jobDir).catch(() => [] as string[])) await rmdir(join(jobDir, child)).catch(() => undefined);
    await rmdir(jobDir).catch(() => undefined);
  }
}
