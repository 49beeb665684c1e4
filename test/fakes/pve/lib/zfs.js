// The fake ZFS model (zfs.json): filesystems (their data is the real directory at their
// mountpoint), zvols, and snapshots. A filesystem snapshot materialises as a read-only copy at
// <mountpoint>/.zfs/snapshot/<snap> (the path ZFS exposes); destroying it removes that copy.
// Not reproduced: used/refer/avail accounting, snapdev, refquota, mounting; a snapshot is a full copy, not COW.
import { chmodSync, cpSync, existsSync, mkdirSync, readdirSync, rmSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { join } from "node:path";

export function zfsModel(state) {
  const data = state.readJson("zfs.json", { datasets: [], snapshots: [] });
  return {
    data,
    dataset: (name) => data.datasets.find((d) => d.name === name),
    snapshot: (name) => data.snapshots.find((s) => s.name === name),
    byMountpoint: (path) => data.datasets.find((d) => d.type === "filesystem" && d.mountpoint === path.replace(/\/+$/, "")),
  };
}

export function saveZfs(state, model) {
  state.writeJson("zfs.json", model.data);
}

export function zfsGuid() {
  return BigInt(`0x${randomBytes(8).toString("hex")}`).toString();
}

export function snapshotDir(dataset, snap) {
  return join(dataset.mountpoint, ".zfs", "snapshot", snap);
}

function makeReadOnly(dir) {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, entry.name);
    if (entry.isDirectory()) makeReadOnly(p);
    else if (entry.isFile()) chmodSync(p, 0o444);
  }
  chmodSync(dir, 0o555);
}

function makeWritable(dir) {
  if (!existsSync(dir)) return;
  chmodSync(dir, 0o755);
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (entry.isDirectory()) makeWritable(join(dir, entry.name));
  }
}

/** Takes every snapshot in `names` at the same instant (one `zfs snapshot` is atomic). */
export function createSnapshots(state, model, names, props = {}) {
  const creation = Math.floor(Date.now() / 1000);
  for (const full of names) {
    const [dsName, snap] = full.split("@");
    const ds = model.dataset(dsName);
    model.data.snapshots.push({ name: full, guid: zfsGuid(), creation, createtxg: Date.now(), props: { ...props } });
    if (ds.type === "filesystem" && ds.mountpoint && ds.mountpoint.startsWith("/") && existsSync(ds.mountpoint)) {
      const target = snapshotDir(ds, snap);
      mkdirSync(target, { recursive: true });
      for (const entry of readdirSync(ds.mountpoint)) {
        if (entry === ".zfs") continue;
        cpSync(join(ds.mountpoint, entry), join(target, entry), { recursive: true, preserveTimestamps: true });
      }
      makeReadOnly(target);
    } else if (ds.type === "volume") {
      const img = state.path("zvol-data", `${dsName}.img`);
      if (existsSync(img)) cpSync(img, state.path("zvol-data", `${dsName}@${snap}.img`));
    }
  }
}

export function destroySnapshot(state, model, full) {
  const [dsName, snap] = full.split("@");
  const ds = model.dataset(dsName);
  model.data.snapshots = model.data.snapshots.filter((s) => s.name !== full);
  if (ds?.type === "filesystem" && ds.mountpoint) {
    const dir = snapshotDir(ds, snap);
    makeWritable(dir);
    rmSync(dir, { recursive: true, force: true });
  }
  rmSync(state.path("zvol-data", `${dsName}@${snap}.img`), { force: true });
}

export function formatZfsSize(bytes, parsable) {
  if (parsable) return String(bytes);
  const units = ["B", "K", "M", "G", "T", "P"];
  let v = bytes;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  if (i === 0) return `${v}B`;
  return `${v < 10 ? v.toFixed(2) : v < 100 ? v.toFixed(1) : Math.round(v)}${units[i]}`;
}

export function formatCreation(epoch, parsable) {
  if (parsable) return String(epoch);
  const d = new Date(epoch * 1000);
  const days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
  const months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
  const p = (n) => String(n).padStart(2, "0");
  return `${days[d.getDay()]} ${months[d.getMonth()]} ${String(d.getDate()).padStart(2)} ${p(d.getHours())}:${p(d.getMinutes())} ${d.getFullYear()}`;
}
