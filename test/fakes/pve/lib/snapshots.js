// Storage snapshots as pve-storage's volume_snapshot / volume_snapshot_delete take them
// (used by the fake vzdump and `pct delsnapshot`): LVM-thin `snap_<vol>_<snap>` via
// lvcreate -n … -pr -s + lvchange -ay -K, removed with lvremove -f; ZFS `<dataset>@<snap>`.
// Each call is recorded in calls.log with the argv the real plugin runs (tool "lvcreate" …, via "pve-storage").
// Not reproduced: RBD/btrfs/qcow2 snapshots, `pve-storage:refquota` on ZFS subvol snapshots, guest_migration_lock.
import { rmSync } from "node:fs";
import { findLv, lvDataDir, lvmModel, makeThinSnapshot, saveLvm } from "./lvm.js";
import { resolveVolume } from "./storage.js";
import { createSnapshots, destroySnapshot, saveZfs, zfsModel } from "./zfs.js";

export class StorageError extends Error {}

function record(state, tool, args) {
  state.recordCall(tool, args);
}

/** Takes one volume's snapshot; returns the lines the storage tools print (unprefixed in vzdump's log). */
export function createStorageSnapshot(state, volid, snap) {
  const vol = resolveVolume(state, volid, zfsModel(state));
  if (vol.lv) {
    const { vg, name } = vol.lv;
    const snapName = `snap_${name}_${snap}`;
    return state.locked(() => {
      record(state, "lvcreate", ["-n", snapName, "-pr", "-s", `${vg}/${name}`]);
      const model = lvmModel(state);
      const origin = findLv(model, vg, name);
      if (!origin) throw new StorageError(`lvcreate snapshot '${vg}/${snapName}' error:   Failed to find logical volume "${vg}/${name}"`);
      if (findLv(model, vg, snapName)) {
        throw new StorageError(`lvcreate snapshot '${vg}/${snapName}' error:   Logical Volume "${snapName}" already exists in volume group "${vg}"`);
      }
      const pool = findLv(model, vg, origin.pool);
      const injected = [].concat(state.faults().thinPoolFull ?? []);
      const full = injected.some((p) => p === true || p === `${vg}/${origin.pool}`) || (pool?.dataPercent ?? 0) >= 100 || (pool?.metadataPercent ?? 0) >= 100;
      if (full) {
        throw new StorageError(
          `lvcreate snapshot '${vg}/${snapName}' error:   Cannot create new thin volume, free space in thin pool ${vg}/${origin.pool} reached threshold.`,
        );
      }
      makeThinSnapshot(state, model, origin, snapName, { readOnly: true, skipActivation: true, activate: false });
      record(state, "lvchange", ["-ay", "-K", `${vg}/${snapName}`]);
      findLv(model, vg, snapName).active = true;
      saveLvm(state, model);
      return [`  Logical volume "${snapName}" created.`];
    });
  }
  if (vol.dataset) {
    const full = `${vol.dataset.name}@${snap}`;
    return state.locked(() => {
      record(state, "zfs", ["snapshot", full]);
      const model = zfsModel(state);
      if (!model.dataset(vol.dataset.name)) throw new StorageError(`zfs error: cannot open '${vol.dataset.name}': dataset does not exist`);
      if (model.snapshot(full)) throw new StorageError(`zfs error: cannot create snapshot '${full}': dataset already exists`);
      createSnapshots(state, model, [full]);
      saveZfs(state, model);
      return [];
    });
  }
  throw new StorageError(`snapshot feature is not available`);
}

/** Removes one volume's snapshot; returns the printed lines. Missing snapshots are an error like the real plugin's. */
export function removeStorageSnapshot(state, volid, snap) {
  const vol = resolveVolume(state, volid, zfsModel(state));
  if (vol.lv) {
    const { vg, name } = vol.lv;
    const snapName = `snap_${name}_${snap}`;
    return state.locked(() => {
      record(state, "lvremove", ["-f", `${vg}/${snapName}`]);
      const model = lvmModel(state);
      if (!findLv(model, vg, snapName)) throw new StorageError(`lvremove '${vg}/${snapName}' error:   Failed to find logical volume "${vg}/${snapName}"`);
      model.lvs = model.lvs.filter((lv) => !(lv.vg === vg && lv.name === snapName));
      rmSync(lvDataDir(state, vg, snapName), { recursive: true, force: true });
      saveLvm(state, model);
      return [`  Logical volume "${snapName}" successfully removed.`];
    });
  }
  if (vol.dataset) {
    const full = `${vol.dataset.name}@${snap}`;
    return state.locked(() => {
      record(state, "zfs", ["destroy", full]);
      const model = zfsModel(state);
      if (!model.snapshot(full)) throw new StorageError(`zfs error: could not find any snapshots to destroy; check snapshot names.`);
      destroySnapshot(state, model, full);
      saveZfs(state, model);
      return [];
    });
  }
  throw new StorageError(`snapshot feature is not available`);
}

/** Where the snapshot's file tree is in the fake (what vzdump mounts at /mnt/vzsnap0<mp>). */
export function snapshotDataDir(state, volid, snap) {
  const vol = resolveVolume(state, volid, zfsModel(state));
  if (vol.lv) return lvDataDir(state, vol.lv.vg, `snap_${vol.lv.name}_${snap}`);
  if (vol.dataset && !vol.dataset.zvol) return `${vol.path}/.zfs/snapshot/${snap}`;
  return undefined;
}

/** Where a volume's live file tree is in the fake. */
export function liveDataDir(state, volid) {
  const vol = resolveVolume(state, volid, zfsModel(state));
  if (vol.lv) return lvDataDir(state, vol.lv.vg, vol.lv.name);
  return vol.path;
}
