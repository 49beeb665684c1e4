// Guest configs in the real /etc/pve format: `#description` lines, sorted `key: value`
// lines (raw `lxc.*` keys last for containers), then one `[snapname]` section per snapshot.
// Guest runtime state (running/stopped/paused, frozen, guest agent) lives in run/guests/.
// Not reproduced: config digests, pending sections, `lxc.*` validation, templates' base volumes.
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";

export function confRel(state, type, vmid) {
  return join("etc", "pve", "nodes", state.node(), type === "lxc" ? "lxc" : "qemu-server", `${vmid}.conf`);
}

/** 'lxc' | 'qemu' | undefined for a vmid on this node. */
export function guestType(state, vmid) {
  if (existsSync(state.path(confRel(state, "lxc", vmid)))) return "lxc";
  if (existsSync(state.path(confRel(state, "qemu", vmid)))) return "qemu";
  return undefined;
}

export function listGuests(state, type) {
  const dir = state.path("etc", "pve", "nodes", state.node(), type === "lxc" ? "lxc" : "qemu-server");
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => /^\d+\.conf$/.test(f))
    .map((f) => Number(f.slice(0, -5)))
    .sort((a, b) => a - b);
}

/** Parses a config file into { description, current: Map, snapshots: Map<name, {description, keys: Map}> }. */
export function parseConf(text) {
  const conf = { description: [], current: new Map(), snapshots: new Map() };
  let section = { description: conf.description, keys: conf.current };
  for (const raw of text.split("\n")) {
    const line = raw.trimEnd();
    if (line === "") continue;
    const header = /^\[([A-Za-z0-9_-]+)\]$/.exec(line);
    if (header) {
      section = { description: [], keys: new Map() };
      conf.snapshots.set(header[1], section);
      continue;
    }
    if (line.startsWith("#")) {
      section.description.push(line.slice(1));
      continue;
    }
    const kv = /^([A-Za-z0-9_.-]+)(?::\s*|\s*=\s*)(.*)$/.exec(line);
    if (kv) section.keys.set(kv[1], kv[2]);
  }
  return conf;
}

function sortedKeys(keys) {
  const plain = [...keys.keys()].filter((k) => !k.startsWith("lxc.")).sort();
  const raw = [...keys.keys()].filter((k) => k.startsWith("lxc."));
  return [...plain, ...raw];
}

export function keyLines(keys, { omit = [] } = {}) {
  return sortedKeys(keys)
    .filter((k) => !omit.includes(k))
    .map((k) => `${k}: ${keys.get(k)}`);
}

export function serializeConf(conf) {
  const out = [...conf.description.map((d) => `#${d}`), ...keyLines(conf.current)];
  for (const [name, section] of conf.snapshots) {
    out.push("", `[${name}]`, ...section.description.map((d) => `#${d}`), ...keyLines(section.keys));
  }
  return `${out.join("\n")}\n`;
}

export function readConf(state, vmid) {
  const type = guestType(state, vmid);
  if (!type) return undefined;
  return { type, conf: parseConf(state.readText(confRel(state, type, vmid), "")) };
}

/** Read-modify-write of a guest config under the state lock; fn may return a value. */
export function updateConf(state, vmid, fn) {
  return state.locked(() => {
    const type = guestType(state, vmid);
    if (!type) throw new Error(`guest ${vmid} does not exist`);
    const rel = confRel(state, type, vmid);
    const conf = parseConf(state.readText(rel, ""));
    const result = fn(conf, type);
    state.writeText(rel, serializeConf(conf));
    return result;
  });
}

export function runtime(state, vmid) {
  return state.guestRuntime(vmid) ?? { status: "stopped" };
}

/** The guest's name as vzdump reports it: CT hostname or `CT<id>`, VM `name` or `VM<id>`. */
export function guestName(type, conf, vmid) {
  if (type === "lxc") return conf.current.get("hostname") ?? `CT${vmid}`;
  return conf.current.get("name") ?? `VM${vmid}`;
}

/** `local-lvm:vm-101-disk-0,size=8G` → { volid, opts: Map }. */
export function parseVolumeValue(value) {
  const parts = value.split(",");
  const opts = new Map();
  let volid = parts[0] ?? "";
  if (volid.includes("=")) {
    volid = "";
    for (const p of parts) {
      const [k, v] = p.split("=");
      if (k === "file" || k === "volume") volid = v ?? "";
      else opts.set(k, v ?? "");
    }
  } else {
    for (const p of parts.slice(1)) {
      const eq = p.indexOf("=");
      if (eq > 0) opts.set(p.slice(0, eq), p.slice(eq + 1));
    }
  }
  return { volid, opts };
}

const QEMU_DISK = /^(scsi|virtio|sata|ide)\d+$|^efidisk0$|^tpmstate0$/;

/** The volumes vzdump would back up, with include/exclude decisions (vzdump's own rules). */
export function backupVolumes(type, conf) {
  const result = [];
  for (const [key, value] of conf.current) {
    if (type === "lxc" && (key === "rootfs" || /^mp\d+$/.test(key))) {
      const { volid, opts } = parseVolumeValue(value);
      const mp = key === "rootfs" ? "/" : (opts.get("mp") ?? "");
      const isVolume = /^[A-Za-z][A-Za-z0-9_.-]*:/.test(volid);
      const included = key === "rootfs" || (isVolume && opts.get("backup") === "1");
      result.push({ key, volid, mp, opts, included, isVolume });
    } else if (type === "qemu" && QEMU_DISK.test(key)) {
      const { volid, opts } = parseVolumeValue(value);
      if (opts.get("media") === "cdrom" || volid === "none" || volid === "cdrom") continue;
      const included = opts.get("backup") !== "0";
      result.push({ key, volid, mp: undefined, opts, included, isVolume: true });
    }
  }
  return result.sort((a, b) => volumeOrder(a.key) - volumeOrder(b.key) || a.key.localeCompare(b.key));
}

function volumeOrder(key) {
  return key === "rootfs" ? 0 : 1;
}
