// storage.cfg (real format) and volume resolution as pve-storage does it:
// lvmthin → /dev/<vg>/<vol>, zfspool → <pool>/<vol> (subvol: its mountpoint, zvol: /dev/zvol/...),
// dir → <path>/images/<vmid>/<file>, dump dir of a dir storage → <path>/dump.
// pbs: (Proxmox Backup Server) is a backup target only: VZDump::storage_info gives it no dump dir
// ({ pbs } instead); the "server" is a directory under the state dir (pbs/<storeid>/<snapshot>/).
// Not reproduced: rbd/iscsi/cifs paths, `is_mountpoint`, storage activation, content-type checks beyond `backup`.
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

/**
 * The backup target of a storage, as VZDump::storage_info computes it: { dir } for a file storage,
 * { pbs: { storeid, datastore, repository } } for a `pbs:` storage (no dump dir), or { error }.
 */
export function dumpDirOf(state, storeid) {
  const storage = readStorages(state).get(storeid);
  if (!storage) return { error: `storage '${storeid}' does not exist` };
  if (storage.type === "pbs") {
    const content = (storage.props.get("content") ?? "backup").split(",");
    if (!content.includes("backup")) return { error: `can't use storage '${storeid}' for backups - wrong content type` };
    const datastore = storage.props.get("datastore") ?? "store";
    const server = storage.props.get("server") ?? "localhost";
    const username = storage.props.get("username") ?? "root@pam";
    return { pbs: { storeid, datastore, repository: `${username}@${server}:8007:${datastore}` } };
  }
  if (storage.type !== "dir" && storage.type !== "nfs" && storage.type !== "cifs") {
    return { error: `storage '${storeid}' does not support backups` };
  }
  const content = (storage.props.get("content") ?? "").split(",");
  if (!content.includes("backup")) return { error: `storage '${storeid}' does not support backups` };
  return { dir: join(storage.props.get("path") ?? "/var/lib/vz", "dump") };
}

/** Where the fake PBS keeps a snapshot's files (`<state>/pbs/<storeid>/<ct|vm>/<id>/<time>`). */
export function pbsSnapshotDir(state, storeid, snapshot) {
  return state.path("pbs", storeid, ...snapshot.split("/"));
}

/**
 * /etc/vzdump.conf as VZDump::read_vzdump_defaults reads it: `key: value` lines (comments and
 * blank lines skipped). Returns a Map; an unreadable or absent file is an empty one.
 */
export function readVzdumpConf(state) {
  const conf = new Map();
  for (const raw of state.readText(join("etc", "vzdump.conf"), "").split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    const m = /^([a-z][a-z0-9_-]*):\s*(.*)$/.exec(line);
    if (m) conf.set(m[1], m[2].trim());
  }
  return conf;
}
