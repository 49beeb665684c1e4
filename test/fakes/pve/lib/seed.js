// The seeding and inspection API tests use to set up the fake node (types in seed.d.ts):
//   const pve = FakePve.create(dir);                          // empty node "pve1"
//   pve.addDirStorage("local", join(dir, "vz"));              // dump dir <path>/dump
//   pve.addLvmThinStorage("local-lvm", { vg: "pve", pool: "data", dataPercent: 12 });
//   pve.addZfsStorage("local-zfs", { pool: "rpool/data", mountRoot: join(dir, "zfs") });
//   pve.addContainer(101, { hostname: "web01", rootfs: { storage: "local-lvm", files: { "etc/hostname": "web01\n" } } });
//   pve.addVm(100, { name: "db", disks: [{ key: "scsi0", storage: "local-lvm" }], agent: true });
//   spawn("vzdump", [...], { env: pve.env() });
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { confRel, parseConf, readConf, serializeConf, updateConf } from "./guests.js";
import { ensureDataDir, findLv, freshPool, freshThinVolume, lvDataDir, lvmModel, saveLvm } from "./lvm.js";
import { StateDir } from "./state.js";
import { readStorages } from "./storage.js";
import { saveZfs, zfsGuid, zfsModel } from "./zfs.js";

export const FAKE_BIN_DIR = resolve(dirname(fileURLToPath(import.meta.url)), "..", "bin");
const GiB = 1024 ** 3;

function writeFiles(root, files = {}) {
  mkdirSync(root, { recursive: true });
  for (const [rel, content] of Object.entries(files)) {
    const file = join(root, rel);
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, content);
  }
}

export class FakePve {
  static create(root, { node = "pve1" } = {}) {
    mkdirSync(root, { recursive: true });
    const pve = new FakePve(root);
    pve.state.writeText("node", `${node}\n`);
    pve.state.writeText("etc/pve/storage.cfg", "");
    return pve;
  }

  /**
   * The node most tests want, in `dir`: state in <dir>/state, storages `local` (dir <dir>/vz, dump
   * dir <dir>/vz/dump), `local-lvm` (lvmthin pve/data at 12.5 % data / 3.25 % metadata) and
   * `local-zfs` (zfspool rpool/data mounted under <dir>/zfs); QEMU progress lines without the 2 s
   * spacing and a one-second lockwait "minute".
   */
  static createStandard(dir, { lvm = true, zfs = true } = {}) {
    const pve = FakePve.create(join(dir, "state"));
    pve.addDirStorage("local", join(dir, "vz"));
    if (lvm) pve.addLvmThinStorage("local-lvm", { vg: "pve", pool: "data", dataPercent: 12.5, metadataPercent: 3.25 });
    if (zfs) pve.addZfsStorage("local-zfs", { pool: "rpool/data", mountRoot: join(dir, "zfs") });
    pve.setOptions({ progressIntervalMs: 0, lockwaitMinuteMs: 1000 });
    return pve;
  }

  constructor(root) {
    this.root = root;
    this.state = new StateDir(root);
    this.binDir = FAKE_BIN_DIR;
  }

  /** Environment for a child process that should see the fake toolbox first on PATH. */
  env(base = process.env) {
    return { ...base, PATH: `${FAKE_BIN_DIR}:${base.PATH ?? "/usr/bin:/bin"}`, PVE_FAKE_STATE: this.root };
  }

  node() {
    return this.state.node();
  }

  storageCfgPath() {
    return this.state.path("etc", "pve", "storage.cfg");
  }

  appendStorage(text) {
    const current = this.state.readText("etc/pve/storage.cfg", "");
    this.state.writeText("etc/pve/storage.cfg", `${current}${current && !current.endsWith("\n\n") ? "\n" : ""}${text}\n`);
  }

  addDirStorage(id, path, { content = "iso,vztmpl,backup,rootdir,images" } = {}) {
    mkdirSync(join(path, "dump"), { recursive: true });
    this.appendStorage(`dir: ${id}\n\tpath ${path}\n\tcontent ${content}\n`);
  }

  /** A `pbs:` storage (Proxmox Backup Server); the fake keeps its snapshots under <state>/pbs/<id>/. */
  addPbsStorage(id, { datastore = "store", server = "192.0.2.10", username = "root@pam", content = "backup" } = {}) {
    this.appendStorage(`pbs: ${id}\n\tdatastore ${datastore}\n\tserver ${server}\n\tcontent ${content}\n\tusername ${username}\n\tfingerprint 00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd:ee:ff:00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd:ee:ff\n`);
  }

  /** Writes /etc/vzdump.conf (`key: value` lines) from an object; undefined values are left out. */
  writeVzdumpConf(keys) {
    const lines = Object.entries(keys).filter(([, v]) => v !== undefined).map(([k, v]) => `${k}: ${v}`);
    this.state.writeText("etc/vzdump.conf", `${lines.join("\n")}\n`);
  }

  addLvmThinStorage(id, { vg = "pve", pool = "data", size = 100 * GiB, dataPercent = 10, metadataPercent = 5 } = {}) {
    this.appendStorage(`lvmthin: ${id}\n\tthinpool ${pool}\n\tvgname ${vg}\n\tcontent rootdir,images\n`);
    this.state.locked(() => {
      const model = lvmModel(this.state);
      model.vgs[vg] = { size: model.vgs[vg]?.size ?? size * 2 };
      if (!findLv(model, vg, pool)) model.lvs.push(freshPool(vg, pool, { size, dataPercent, metadataPercent }));
      saveLvm(this.state, model);
    });
  }

  setThinPoolUsage(vg, pool, { dataPercent, metadataPercent }) {
    this.state.locked(() => {
      const model = lvmModel(this.state);
      const lv = findLv(model, vg, pool);
      if (dataPercent !== undefined) lv.dataPercent = dataPercent;
      if (metadataPercent !== undefined) lv.metadataPercent = metadataPercent;
      saveLvm(this.state, model);
    });
  }

  addZfsStorage(id, { pool = "rpool/data", mountRoot }) {
    this.appendStorage(`zfspool: ${id}\n\tpool ${pool}\n\tcontent images,rootdir\n\tmountpoint ${join(mountRoot, ...pool.split("/"))}\n\tsparse 1\n`);
    this.state.locked(() => {
      const model = zfsModel(this.state);
      const parts = pool.split("/");
      for (let i = 1; i <= parts.length; i++) {
        const name = parts.slice(0, i).join("/");
        if (!model.dataset(name)) {
          const mountpoint = join(mountRoot, ...parts.slice(0, i));
          mkdirSync(mountpoint, { recursive: true });
          model.data.datasets.push({ name, type: "filesystem", mountpoint, guid: zfsGuid(), creation: Math.floor(Date.now() / 1000) });
        }
      }
      saveZfs(this.state, model);
    });
  }

  /** Creates a volume on a storage; returns its volid. kind: "ct" (subvol/filesystem) or "vm" (zvol/raw). */
  addVolume(storeid, volname, { size = 8 * GiB, files, bytes } = {}) {
    const storage = readStorages(this.state).get(storeid);
    if (!storage) throw new Error(`seed: unknown storage ${storeid}`);
    if (storage.type === "lvmthin") {
      const vg = storage.props.get("vgname");
      const pool = storage.props.get("thinpool");
      this.state.locked(() => {
        const model = lvmModel(this.state);
        model.lvs.push(freshThinVolume(vg, volname, pool, { size, dataPercent: 20 }));
        saveLvm(this.state, model);
      });
      ensureDataDir(this.state, vg, volname);
      writeFiles(lvDataDir(this.state, vg, volname), files);
      if (bytes) writeFileSync(join(lvDataDir(this.state, vg, volname), "disk.img"), bytes);
    } else if (storage.type === "zfspool") {
      const pool = storage.props.get("pool");
      const name = `${pool}/${volname}`;
      const zvol = !/^(sub|base)vol-/.test(volname);
      this.state.locked(() => {
        const model = zfsModel(this.state);
        const parent = model.dataset(pool);
        const entry = { name, type: zvol ? "volume" : "filesystem", guid: zfsGuid(), creation: Math.floor(Date.now() / 1000) };
        if (zvol) entry.volsize = size;
        else entry.mountpoint = join(parent.mountpoint, volname);
        model.data.datasets.push(entry);
        saveZfs(this.state, model);
        if (!zvol) writeFiles(entry.mountpoint, files);
        else if (bytes) writeFiles(this.state.path("zvol-data", dirname(name)), { [`${volname}.img`]: bytes });
      });
    } else if (storage.type === "dir") {
      const root = storage.props.get("path");
      writeFiles(join(root, "images", volname), files);
    } else {
      throw new Error(`seed: storage type ${storage.type} is not modelled`);
    }
    return `${storeid}:${volname}`;
  }

  writeGuestConf(type, vmid, keys) {
    const conf = parseConf("");
    for (const [k, v] of Object.entries(keys)) if (v !== undefined) conf.current.set(k, String(v));
    this.state.writeText(confRel(this.state, type, vmid), serializeConf(conf));
  }

  addContainer(vmid, { hostname = `ct${vmid}`, status = "running", rootfs = {}, mps = [], config = {}, lock } = {}) {
    const diskName = (n, storeid) => {
      const type = readStorages(this.state).get(storeid)?.type;
      return type === "zfspool" ? `subvol-${vmid}-disk-${n}` : type === "dir" ? `${vmid}/subvol-${vmid}-disk-${n}.subvol` : `vm-${vmid}-disk-${n}`;
    };
    const keys = { arch: "amd64", cores: 1, hostname, memory: 512, ostype: "debian", swap: 512, ...config };
    const rootStore = rootfs.storage ?? "local-lvm";
    keys.rootfs = `${this.addVolume(rootStore, diskName(0, rootStore), { files: rootfs.files })},size=${rootfs.size ?? "8G"}`;
    mps.forEach((mp, i) => {
      if (mp.bind) {
        keys[`mp${i}`] = `${mp.bind},mp=${mp.mp}`;
        return;
      }
      const volid = this.addVolume(mp.storage, diskName(i + 1, mp.storage), { files: mp.files });
      keys[`mp${i}`] = `${volid},mp=${mp.mp}${mp.backup ? ",backup=1" : ""},size=${mp.size ?? "4G"}`;
    });
    if (lock) keys.lock = lock;
    this.writeGuestConf("lxc", vmid, keys);
    this.state.setGuestRuntime(vmid, { status, frozen: false, pid: 10000 + vmid });
  }

  addVm(vmid, { name = `vm${vmid}`, status = "running", disks = [], agent = false, agentRunning = agent, config = {}, lock } = {}) {
    const keys = { boot: "order=scsi0", cores: 2, memory: 2048, name, ostype: "l26", scsihw: "virtio-scsi-single", ...config };
    if (agent) keys.agent = "1";
    disks.forEach((d, i) => {
      if (d.cdrom) {
        keys[d.key] = "none,media=cdrom";
        return;
      }
      const volid = this.addVolume(d.storage, `vm-${vmid}-disk-${i}`, { bytes: d.bytes });
      keys[d.key] = `${volid},iothread=1${d.backup === false ? ",backup=0" : ""},size=${d.size ?? "32G"}`;
    });
    if (lock) keys.lock = lock;
    this.writeGuestConf("qemu", vmid, keys);
    this.state.setGuestRuntime(vmid, { status, agentRunning, fsFrozen: false, pid: 20000 + vmid });
  }

  setFaults(faults) {
    this.state.writeJson("faults.json", faults);
  }

  setOptions(options) {
    this.state.writeJson("options.json", options);
  }

  /** { keys: {...current}, lock, parent, snapshots: [names] } */
  guest(vmid) {
    const found = readConf(this.state, vmid);
    if (!found) return undefined;
    const keys = Object.fromEntries(found.conf.current);
    return { type: found.type, keys, lock: keys.lock, parent: keys.parent, snapshots: [...found.conf.snapshots.keys()], runtime: this.state.guestRuntime(vmid) };
  }

  setGuest(vmid, patch) {
    this.state.setGuestRuntime(vmid, patch);
  }

  /** Sets (or, with undefined, removes) the guest's `lock:` as another Proxmox operation would. */
  setLock(vmid, lock) {
    updateConf(this.state, vmid, (conf) => {
      if (lock === undefined) conf.current.delete("lock");
      else conf.current.set("lock", lock);
    });
  }

  lvs() {
    return lvmModel(this.state).lvs;
  }

  zfsSnapshots() {
    return zfsModel(this.state).data.snapshots.map((s) => s.name);
  }

  /** The forked worker of a fake vzdump CLI process (its child that leads a session of its own), if alive. */
  vzdumpWorkerOf(cliPid) {
    return vzdumpWorkerOf(cliPid);
  }

  /**
   * Kills a fake vzdump as a crash does (OOM, its unit's cgroup): the worker's process group, then the
   * CLI process. (Killing only the CLI leaves the worker running, as on a real node.)
   */
  killVzdump(cliPid, signal = "SIGKILL") {
    const worker = vzdumpWorkerOf(cliPid);
    if (worker !== undefined) {
      try {
        process.kill(-worker, signal);
      } catch {
        // gone
      }
    }
    try {
      process.kill(cliPid, signal);
    } catch {
      // gone
    }
    return worker;
  }

  calls(tool) {
    const all = this.state.calls();
    return tool ? all.filter((c) => c.tool === tool) : all;
  }
}

/** /proc/<pid>/stat: [ppid, pgrp, session]. */
function statIds(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return [Number(f[1]), Number(f[2]), Number(f[3])];
  } catch {
    return undefined;
  }
}

export function vzdumpWorkerOf(cliPid) {
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    const ids = statIds(Number(name));
    if (ids && ids[0] === cliPid && ids[2] === Number(name)) return Number(name);
  }
  return undefined;
}
