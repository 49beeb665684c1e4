// `pct config <id>` / `qm config <id>` output (sorted `key: value` lines) → the volumes vzdump
// backs up: CT rootfs always, CT mpN only when it is a volume with backup=1 (bind and device
// mounts never); VM disks (scsi/virtio/sata/ide/efidisk0/tpmstate0) unless backup=0, never a
// cdrom or `none`. Each volume is located through storage.cfg.
import { locateVolume, type StorageEntry, type VolumeLocation } from "./storage-cfg.js";

export type GuestType = "lxc" | "qemu";

export interface PveVolume extends Partial<VolumeLocation> {
  /** Config key: rootfs, mp0, scsi0 … */
  key: string;
  /** `local-lvm:vm-101-disk-0`, or an absolute path for pass-through disks. */
  volid: string;
  storage?: string;
  volname?: string;
  /** CT mount point inside the guest (`/` for rootfs). */
  mountpoint?: string;
  size?: string;
}

export interface ExcludedVolume {
  key: string;
  value: string;
  reason: string;
}

export interface GuestVolumes {
  volumes: PveVolume[];
  excluded: ExcludedVolume[];
}

/** Parses `key: value` lines; a `[section]` header ends the current config (snapshots are not ours). */
export function parseGuestConfig(text: string): Map<string, string> {
  const keys = new Map<string, string>();
  for (const line of text.split("\n")) {
    if (/^\[.+\]\s*$/.test(line)) break;
    if (line.startsWith("#") || line.trim() === "") continue;
    const m = /^([A-Za-z0-9_.-]+):\s*(.*)$/.exec(line);
    if (m) keys.set(m[1]!, m[2]!);
  }
  return keys;
}

/** `local-lvm:vm-101-disk-0,mp=/srv,backup=1,size=8G` → volume id and options. */
export function parseVolumeOption(value: string): { volid: string; opts: Map<string, string> } {
  const parts = value.split(",");
  const opts = new Map<string, string>();
  let volid = "";
  parts.forEach((part, i) => {
    const eq = part.indexOf("=");
    if (i === 0 && eq < 0) volid = part;
    else if (eq > 0) {
      const k = part.slice(0, eq);
      const v = part.slice(eq + 1);
      if ((k === "file" || k === "volume") && volid === "") volid = v;
      else opts.set(k, v);
    }
  });
  return { volid, opts };
}

const STORAGE_VOLID = /^([a-z][a-z0-9\-_.]*[a-z0-9]):(.+)$/i;
const QEMU_DISK = /^(scsi|virtio|sata|ide)\d+$|^efidisk0$|^tpmstate0$/;

function describe(key: string, volid: string, opts: Map<string, string>, storages: ReadonlyMap<string, StorageEntry>, mountpoint?: string): PveVolume {
  const volume: PveVolume = { key, volid };
  const size = opts.get("size");
  if (size !== undefined) volume.size = size;
  if (mountpoint !== undefined) volume.mountpoint = mountpoint;
  const m = STORAGE_VOLID.exec(volid);
  if (m) {
    volume.storage = m[1]!;
    volume.volname = m[2]!;
    const storage = storages.get(m[1]!);
    if (storage) Object.assign(volume, locateVolume(storage, m[2]!));
    else volume.storageType = "unknown";
  } else if (volid.startsWith("/")) {
    volume.storageType = "path";
    volume.device = volid;
  }
  return volume;
}

export function guestVolumes(type: GuestType, config: ReadonlyMap<string, string>, storages: ReadonlyMap<string, StorageEntry>): GuestVolumes {
  const volumes: PveVolume[] = [];
  const excluded: ExcludedVolume[] = [];
  const keys = [...config.keys()].sort((a, b) => (a === "rootfs" ? -1 : b === "rootfs" ? 1 : a.localeCompare(b, "en", { numeric: true })));
  for (const key of keys) {
    const value = config.get(key)!;
    if (type === "lxc" && (key === "rootfs" || /^mp\d+$/.test(key))) {
      const { volid, opts } = parseVolumeOption(value);
      const mountpoint = key === "rootfs" ? "/" : (opts.get("mp") ?? "");
      if (key !== "rootfs" && !STORAGE_VOLID.test(volid)) {
        excluded.push({ key, value, reason: volid.startsWith("/dev/") ? "device mount" : "bind mount" });
      } else if (key !== "rootfs" && opts.get("backup") !== "1") {
        excluded.push({ key, value, reason: "backup=1 not set" });
      } else {
        volumes.push(describe(key, volid, opts, storages, mountpoint));
      }
    } else if (type === "qemu" && QEMU_DISK.test(key)) {
      const { volid, opts } = parseVolumeOption(value);
      if (opts.get("media") === "cdrom" || volid === "none" || volid === "cdrom") excluded.push({ key, value, reason: "cdrom" });
      else if (opts.get("backup") === "0") excluded.push({ key, value, reason: "backup=0" });
      else volumes.push(describe(key, volid, opts, storages));
    }
  }
  return { volumes, excluded };
}
