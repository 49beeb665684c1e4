// /etc/pve/storage.cfg: `<type>: <storeid>` section headers, each followed by indented
// `<key> <value>` (or bare flag) lines. And how pve-storage maps a volume of a storage to its
// block device, dataset or path (LvmThinPlugin / LVMPlugin / ZFSPoolPlugin / DirPlugin `path`).
import { join } from "node:path";

export interface StorageEntry {
  type: string;
  id: string;
  props: ReadonlyMap<string, string>;
}

export function parseStorageCfg(text: string): Map<string, StorageEntry> {
  const storages = new Map<string, StorageEntry>();
  let current: { type: string; id: string; props: Map<string, string> } | undefined;
  for (const raw of text.split("\n")) {
    const trimmed = raw.trim();
    if (trimmed === "" || trimmed.startsWith("#")) continue;
    const head = /^([a-z][a-z0-9]*):\s*(\S+)\s*$/.exec(raw);
    if (head) {
      current = { type: head[1]!, id: head[2]!, props: new Map() };
      storages.set(current.id, current);
      continue;
    }
    const prop = /^\s+(\S+)(?:\s+(.*))?$/.exec(raw);
    if (prop && current) current.props.set(prop[1]!, (prop[2] ?? "1").trim());
  }
  return storages;
}

export interface VolumeLocation {
  storageType: string;
  /** Block device (LVM, zvol) when the volume is one. */
  device?: string;
  /** File or directory (dir storages, a ZFS subvol's mountpoint). */
  path?: string;
  lvm?: { vg: string; lv: string; thinpool?: string };
  zfs?: { dataset: string; kind: "filesystem" | "volume" };
}

/** Where a volume (`<volname>` on `storage`) lives, as pve-storage's `path` computes it. */
export function locateVolume(storage: StorageEntry, volname: string): VolumeLocation {
  const p = storage.props;
  switch (storage.type) {
    case "lvmthin":
    case "lvm": {
      const vg = p.get("vgname") ?? "";
      const thinpool = storage.type === "lvmthin" ? p.get("thinpool") : undefined;
      return {
        storageType: storage.type,
        device: `/dev/${vg}/${volname}`,
        lvm: { vg, lv: volname, ...(thinpool !== undefined ? { thinpool } : {}) },
      };
    }
    case "zfspool": {
      const pool = p.get("pool") ?? "";
      const dataset = `${pool}/${volname}`;
      if (/^(sub|base)vol-/.test(volname)) {
        const mountpoint = p.get("mountpoint") ?? `/${pool}`;
        return { storageType: storage.type, path: join(mountpoint, volname), zfs: { dataset, kind: "filesystem" } };
      }
      return { storageType: storage.type, device: `/dev/zvol/${dataset}`, zfs: { dataset, kind: "volume" } };
    }
    case "dir":
    case "nfs":
    case "cifs":
    case "btrfs": {
      const root = p.get("path") ?? (storage.type === "dir" ? "/var/lib/vz" : `/mnt/pve/${storage.id}`);
      return { storageType: storage.type, path: join(root, "images", volname) };
    }
    default:
      return { storageType: storage.type };
  }
}

/** The dump directory of a file storage that holds backups (`<path>/dump`), else undefined. */
export function dumpDirOf(storage: StorageEntry): string | undefined {
  if (!["dir", "nfs", "cifs", "btrfs"].includes(storage.type)) return undefined;
  const content = (storage.props.get("content") ?? "").split(",");
  if (!content.includes("backup")) return undefined;
  const root = storage.props.get("path") ?? (storage.type === "dir" ? "/var/lib/vz" : `/mnt/pve/${storage.id}`);
  return join(root, "dump");
}
