// The fake LVM model (lvm.json): volume groups, thin pools with data%/metadata%, thin volumes
// and thin snapshots. An LV's contents are a directory tree under lvm-data/<vg>/<lv>/; a thin
// snapshot copies its origin's tree. lv_attr is derived the way lvs(8) prints it
// (`twi-aotz--` pool, `Vwi-aotz--` volume, `Vri---tz-k` fresh thin snapshot).
// Not reproduced: real data% growth (set by tests), metadata size accounting, LV activation on boot, PVs.
import { cpSync, existsSync, mkdirSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { join } from "node:path";

export const LVM_FAILED = 5; // ECMD_FAILED, the exit code of every failing LVM command

export function lvmModel(state) {
  return state.readJson("lvm.json", { vgs: {}, lvs: [] });
}

export function saveLvm(state, model) {
  state.writeJson("lvm.json", model);
}

export function lvDataDir(state, vg, name) {
  return state.path("lvm-data", vg, name);
}

export function lvmUuid() {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  const bytes = randomBytes(32);
  const chars = [...bytes].map((b) => alphabet[b % alphabet.length]);
  const groups = [6, 4, 4, 4, 4, 4, 6];
  const out = [];
  let i = 0;
  for (const g of groups) {
    out.push(chars.slice(i, i + g).join(""));
    i += g;
  }
  return out.join("-");
}

export function findLv(model, vg, name) {
  return model.lvs.find((lv) => lv.vg === vg && lv.name === name);
}

/** `vg/lv` or `/dev/vg/lv` → { vg, name }; a bare `vg` → { vg }. */
export function parseLvPath(arg) {
  const clean = arg.replace(/^\/dev\//, "").replace(/^mapper\//, "");
  const slash = clean.indexOf("/");
  if (slash < 0) return { vg: clean };
  return { vg: clean.slice(0, slash), name: clean.slice(slash + 1) };
}

export function lvAttr(lv) {
  const type = lv.kind === "pool" ? "t" : lv.kind === "linear" ? "-" : "V";
  const perm = lv.readOnly ? "r" : "w";
  const alloc = "i";
  const state = lv.active ? "a" : "-";
  const open = lv.open || (lv.kind === "pool" && lv.active) ? "o" : "-";
  const target = lv.kind === "linear" ? "-" : "t";
  const zero = lv.kind === "linear" ? "-" : "z";
  let health = "-";
  if (lv.kind === "pool") {
    if ((lv.dataPercent ?? 0) >= 100) health = "D";
    if ((lv.metadataPercent ?? 0) >= 100) health = "M";
  }
  const skip = lv.skipActivation ? "k" : "-";
  return `${type}${perm}${alloc}-${state}${open}${target}${zero}${health}${skip}`;
}

/** Sum of the virtual sizes of the thin volumes in a pool (for the overprovisioning warning). */
export function thinSum(model, vg, pool) {
  return model.lvs.filter((lv) => lv.vg === vg && lv.pool === pool && lv.kind !== "pool").reduce((n, lv) => n + lv.size, 0);
}

export function vgSize(model, vg) {
  return model.vgs[vg]?.size ?? 0;
}

/** The thin snapshot as lvcreate -s makes it: same pool, skip-activation flag, inactive. */
export function makeThinSnapshot(state, model, origin, name, { readOnly, skipActivation, activate }) {
  const lv = {
    vg: origin.vg,
    name,
    kind: "thin",
    size: origin.size,
    pool: origin.pool,
    origin: origin.name,
    dataPercent: origin.dataPercent ?? 0,
    readOnly,
    skipActivation,
    active: activate,
    open: false,
    uuid: lvmUuid(),
    time: Math.floor(Date.now() / 1000),
    tags: [],
  };
  model.lvs.push(lv);
  const from = lvDataDir(state, origin.vg, origin.name);
  const to = lvDataDir(state, origin.vg, name);
  if (existsSync(from)) cpSync(from, to, { recursive: true, preserveTimestamps: true });
  else mkdirSync(to, { recursive: true });
  return lv;
}

export function formatSize(bytes, units, suffix) {
  if (units === "b" || units === "B") return suffix ? `${bytes}B` : String(bytes);
  const base = units !== undefined && units === units.toUpperCase() && units !== "H" ? 1000 : 1024;
  const names = ["b", "k", "m", "g", "t", "p"];
  let unit = (units ?? "h").toLowerCase();
  let power;
  if (unit === "h") {
    power = 0;
    while (power < names.length - 1 && bytes >= base ** (power + 1)) power++;
    unit = names[power];
  } else {
    power = Math.max(0, names.indexOf(unit));
  }
  const value = (bytes / base ** power).toFixed(2);
  const shown = base === 1000 ? unit.toUpperCase() : unit;
  return suffix ? `${value}${shown}` : value;
}

export function freshPool(vg, pool, { size, dataPercent = 0, metadataPercent = 0 }) {
  return {
    vg,
    name: pool,
    kind: "pool",
    size,
    dataPercent,
    metadataPercent,
    metadataSize: Math.max(4 * 1024 * 1024, Math.floor(size / 1000)),
    readOnly: false,
    skipActivation: false,
    active: true,
    open: true,
    uuid: lvmUuid(),
    time: Math.floor(Date.now() / 1000),
    tags: [],
  };
}

export function freshThinVolume(vg, name, pool, { size, dataPercent = 0, active = true }) {
  return {
    vg,
    name,
    kind: "thin",
    size,
    pool,
    dataPercent,
    readOnly: false,
    skipActivation: false,
    active,
    open: false,
    uuid: lvmUuid(),
    time: Math.floor(Date.now() / 1000),
    tags: [],
  };
}

export function ensureDataDir(state, vg, name) {
  mkdirSync(join(lvDataDir(state, vg, name)), { recursive: true });
}
