// storage.cfg (real format) and volume resolution as pve-storage does it:
// lvmthin → /dev/<vg>/<vol>, zfspool → <pool>/<vol> (subvol: its mountpoint, zvol: /dev/zvol/...),
// dir → <path>/images/<vmid>/<file>, dump dir of a dir storage → <path>/dump.
// Not reproduced: rbd/iscsi/pbs/cifs paths, `is_mountpoint`, storage activation, content-type checks beyond `backup`.
import { join } from "node:path";

export function parseStorageCfg(text) {
  const storages = new Map();
  let current;
  for (const raw of (text ?? "").split("\n")) {
    if (raw.trim() === "" || raw.trim().startsWith("#")) continue;
    const head = /^([a-z][a-z0-9]*):\s*(\S+)\s*$/.exec(raw);
    if (head) {
      current = { type: head[1], id: head[2], props: new Map() };
      storages.set(current.id, current);
      continue;
    }
    const prop = /^\s+(\S+)(?:\s+(.*))?$/.exec(raw);
    if (prop && current) current.props.set(prop[1], (prop[2] ?? "1").trim());
  }
  return storages;
}

export function readStorages(state) {
  return parseStorageCfg(state.readText(join("etc", "pve", "storage.cfg"), ""));
}

const SNAPSHOT_CAPABLE = new Set(["lvmthin", "zfspool", "btrfs", "rbd"]);

/**
 * Resolves a volume id for the fake. Returns
 * { storeid, volname, type, snapshots: bool, path, lv?: {vg, name}, dataset?: {name, zvol} }
 * or throws the real error for an unknown storage.
 */
export function resolveVolume(state, volid, zfsModel) {
  const colon = volid.indexOf(":");
  if (colon <= 0) return { storeid: "", volname: volid, type: "path", snapshots: false, path: volid };
  const storeid = volid.slice(0, colon);
  const volname = volid.slice(colon + 1);
  const storage = readStorages(state).get(storeid);
  if (!storage) throw new Error(`storage '${storeid}' does not exist`);
  const base = { storeid, volname, type: storage.type, snapshots: SNAPSHOT_CAPABLE.has(storage.type) };
  switch (storage.type) {
    case "lvmthin":
    case "lvm": {
      const vg = storage.props.get("vgname") ?? "pve";
      const thin = storage.type === "lvmthin";
      return { ...base, snapshots: thin, path: `/dev/${vg}/${volname}`, lv: { vg, name: volname, pool: storage.props.get("thinpool") } };
    }
    case "zfspool": {
      const pool = storage.props.get("pool") ?? "rpool/data";
      const name = `${pool}/${volname}`;
      const zvol = !/^(sub|base)vol-/.test(volname);
      const ds = zfsModel?.dataset(name);
      const path = zvol ? `/dev/zvol/${name}` : (ds?.mountpoint ?? `/${name}`);
      return { ...base, path, dataset: { name, zvol } };
    }
    case "dir": {
      const root = storage.props.get("path") ?? "/var/lib/vz";
      const snapshots = volname.endsWith(".qcow2");
      return { ...base, snapshots, path: join(root, "images", volname) };
    }
    default:
      return { ...base, path: `${storeid}:${volname}` };
  }
}

/** The dump directory of a storage (file storages only), as vzdump computes it. */
export function dumpDirOf(state, storeid) {
  const storage = readStorages(state).get(storeid);
  if (!storage) return { error: `storage '${storeid}' does not exist` };
  if (storage.type !== "dir" && storage.type !== "nfs" && storage.type !== "cifs") {
    return { error: `storage '${storeid}' does not support backups` };
  }
  const content = (storage.props.get("content") ?? "").split(",");
  if (!content.includes("backup")) return { error: `storage '${storeid}' does not support backups` };
  return { dir: join(storage.props.get("path") ?? "/var/lib/vz", "dump") };
}
