// Restore and removal of guests in the fake toolbox, after the real sources (README "Restore,
// destroy, next id"):
//   pct restore <vmid> <archive> [--storage S] [--unique] [--start] [--force] [--description D] …
//   qmrestore <archive> <vmid> [--storage S] [--unique] [--start] [--force]
//   pct destroy <vmid> [--purge] [--force], qm destroy <vmid> [--purge] [--skiplock]
//   pct mount|unmount <vmid>, pct set|qm set <vmid> --<key> <value> …
// The create lock: the config holds only `lock: create` from the moment the vmid is taken until
// the restore wrote the merged config (create_and_lock_config); a SIGTERM ends the restore the way
// the worker's eval does (volumes and config removed, `unable to restore CT <id> - interrupted by
// signal`); a SIGKILL leaves the locked config and the volumes it made, as on a real node.
// Injected fault slowRestore { delayMs }: the extraction waits that long (with the lock held).
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync } from "node:fs";
import { basename, join } from "node:path";
import { fail, out, parsePve } from "./cli.js";
import { backupVolumes, confRel, guestType, parseConf, parseVolumeValue, readConf, runtime, serializeConf, updateConf } from "./guests.js";
import { ensureDataDir, findLv, freshThinVolume, lvDataDir, lvmModel, saveLvm } from "./lvm.js";
import { dumpDirOf, pbsSnapshotDir, readStorages, resolveVolume } from "./storage.js";
import { zfsGuid, zfsModel, saveZfs } from "./zfs.js";

const GiB = 1024 ** 3;
const typeWord = (type) => (type === "lxc" ? "CT" : "VM");

function parseVmid(arg) {
  if (!/^\d+$/.test(arg ?? "") || Number(arg) < 100 || Number(arg) > 999999999) {
    fail(["400 Parameter verification failed.", `vmid: type check ('integer') failed - got '${arg ?? ""}'`], 255);
  }
  return Number(arg);
}

/** PVE::Cluster::check_vmid_unused: `CT|VM <id> already exists on node '<node>'`. */
function vmidUsedMessage(state, vmid) {
  const type = guestType(state, vmid);
  return type ? `${typeWord(type)} ${vmid} already exists on node '${state.node()}'` : undefined;
}

/**
 * The archive a restore reads: `<storage>:backup/<file>` (a dump dir file), a PBS volid
 * `<storage>:backup/<ct|vm>/<id>/<time>`, or an absolute path. Returns { path, compressed, pbs }.
 */
export function resolveArchive(state, archive) {
  if (archive.startsWith("/")) {
    if (!existsSync(archive)) fail(`can't find file '${archive}'`, 255);
    return { path: archive, name: basename(archive) };
  }
  const m = /^([A-Za-z][A-Za-z0-9_.-]*):backup\/(.+)$/.exec(archive);
  if (!m) fail(`unable to parse volume ID '${archive}'`, 255);
  const storage = readStorages(state).get(m[1]);
  if (!storage) fail(`storage '${m[1]}' does not exist`, 255);
  if (storage.type === "pbs") {
    const dir = pbsSnapshotDir(state, m[1], m[2]);
    const file = ["root.pxar", "disks.vma"].map((f) => join(dir, f)).find((f) => existsSync(f)) ?? (existsSync(dir) ? readdirSync(dir).map((f) => join(dir, f))[0] : undefined);
    if (!file) fail(`proxmox-backup-client failed: Error: unable to find snapshot '${m[2]}'`, 255);
    return { path: file, name: m[2], pbs: true };
  }
  const target = dumpDirOf(state, m[1]);
  if (target.error) fail(target.error, 255);
  const path = join(target.dir, m[2]);
  if (!existsSync(path)) fail(`can't find file '${path}'`, 255);
  return { path, name: m[2] };
}

function decompressArgs(path) {
  if (path.endsWith(".zst")) return ["zstd", ["-q", "-d", "-c", path]];
  if (path.endsWith(".gz") || path.endsWith(".tgz")) return ["gzip", ["-d", "-c", path]];
  if (path.endsWith(".lzo")) fail("fake toolbox: lzo archives are not modelled", 255);
  return ["cat", [path]];
}

/** The archive's bytes, decompressed. */
function archiveBytes(path) {
  const [cmd, args] = decompressArgs(path);
  const r = spawnSync(cmd, args, { maxBuffer: 4 * GiB });
  if (r.status !== 0) fail(`command '${cmd} ${args.join(" ")}' failed: exit code ${r.status}`, 255);
  return r.stdout;
}

/** The directory that holds a volume's files in the fake (its "mounted" view). */
export function volumeDataDir(state, volid) {
  const v = resolveVolume(state, volid, zfsModel(state));
  if (v.lv) return lvDataDir(state, v.lv.vg, v.lv.name);
  return v.path;
}

/** Allocates a new volume for a guest on a storage (vdisk_alloc): `vm-<id>-disk-<n>` / `subvol-<id>-disk-<n>`. */
function allocVolume(state, storeid, vmid, kind, first, sizeBytes) {
  // find_free_diskname: the first `…-disk-<n>` not in use on the storage.
  let n = first;
  const taken = (name) => {
    try {
      return existsSync(volumeDataDir(state, `${storeid}:${name}`)) || lvmModel(state).lvs.some((lv) => lv.name === name.split("/").at(-1)) || zfsModel(state).dataset(`${readStorages(state).get(storeid)?.props.get("pool")}/${name}`) !== undefined;
    } catch {
      return false;
    }
  };
  while ([`vm-${vmid}-disk-${n}`, `subvol-${vmid}-disk-${n}`, `${vmid}/subvol-${vmid}-disk-${n}.subvol`, `${vmid}/vm-${vmid}-disk-${n}.raw`].some(taken)) n++;
  const storage = readStorages(state).get(storeid);
  if (!storage) fail(`storage '${storeid}' does not exist`, 255);
  if (storage.type === "lvmthin") {
    const vg = storage.props.get("vgname") ?? "pve";
    const name = `vm-${vmid}-disk-${n}`;
    state.locked(() => {
      const model = lvmModel(state);
      if (findLv(model, vg, name)) fail(`lvcreate 'pve/${name}' error:   Logical Volume "${name}" already exists in volume group "${vg}"`, 255);
      model.lvs.push(freshThinVolume(vg, name, storage.props.get("thinpool"), { size: sizeBytes, dataPercent: 0 }));
      saveLvm(state, model);
    });
    ensureDataDir(state, vg, name);
    out(`  Logical volume "${name}" created.`);
    return `${storeid}:${name}`;
  }
  if (storage.type === "zfspool") {
    const pool = storage.props.get("pool") ?? "rpool/data";
    const volname = kind === "ct" ? `subvol-${vmid}-disk-${n}` : `vm-${vmid}-disk-${n}`;
    state.locked(() => {
      const model = zfsModel(state);
      const parent = model.dataset(pool);
      const entry = { name: `${pool}/${volname}`, type: kind === "ct" ? "filesystem" : "volume", guid: zfsGuid(), creation: Math.floor(Date.now() / 1000) };
      if (kind === "ct") entry.mountpoint = join(parent.mountpoint, volname);
      else entry.volsize = sizeBytes;
      model.data.datasets.push(entry);
      saveZfs(state, model);
      if (entry.mountpoint) mkdirSync(entry.mountpoint, { recursive: true });
    });
    return `${storeid}:${volname}`;
  }
  if (storage.type === "dir") {
    const volname = kind === "ct" ? `${vmid}/subvol-${vmid}-disk-${n}.subvol` : `${vmid}/vm-${vmid}-disk-${n}.raw`;
    const path = join(storage.props.get("path") ?? "/var/lib/vz", "images", volname);
    if (kind === "ct") mkdirSync(path, { recursive: true });
    else mkdirSync(join(path, ".."), { recursive: true });
    return `${storeid}:${volname}`;
  }
  fail(`storage '${storeid}' does not support container directories`, 255);
}

/** vdisk_free of the fake: the LV / dataset / directory and its data go. */
export function freeVolume(state, volid) {
  let v;
  try {
    v = resolveVolume(state, volid, zfsModel(state));
  } catch {
    return;
  }
  if (v.lv) {
    state.locked(() => {
      const model = lvmModel(state);
      model.lvs = model.lvs.filter((lv) => !(lv.vg === v.lv.vg && lv.name === v.lv.name));
      saveLvm(state, model);
    });
    rmSync(lvDataDir(state, v.lv.vg, v.lv.name), { recursive: true, force: true });
  } else if (v.dataset) {
    state.locked(() => {
      const model = zfsModel(state);
      model.data.datasets = model.data.datasets.filter((d) => d.name !== v.dataset.name);
      saveZfs(state, model);
    });
    if (!v.dataset.zvol) rmSync(v.path, { recursive: true, force: true });
    rmSync(state.path("zvol-data", `${v.dataset.name}.img`), { force: true });
  } else if (v.type === "dir") {
    rmSync(v.path, { recursive: true, force: true });
  }
}

function sizeOf(value) {
  const m = /^(\d+(?:\.\d+)?)([KMGT]?)$/.exec(value ?? "");
  if (!m) return 8 * GiB;
  return Math.round(Number(m[1]) * { "": 1, K: 1024, M: 1024 ** 2, G: GiB, T: 1024 * GiB }[m[2]]);
}

function randomMac() {
  // PVE::Tools::random_ether_addr: a locally administered unicast address.
  const b = Array.from({ length: 6 }, () => Math.floor(Math.random() * 256));
  b[0] = (b[0] & 0xfe) | 0x02;
  return b.map((x) => x.toString(16).padStart(2, "0").toUpperCase()).join(":");
}

/** Writes the config that only holds the create lock (create_and_lock_config); force allows an existing, unlocked one. */
function createAndLock(state, type, vmid, force, emsg) {
  state.locked(() => {
    const existing = guestType(state, vmid);
    if (existing && !force) fail(`${emsg} ${vmidUsedMessage(state, vmid)}`, 255);
    if (existing) {
      const conf = parseConf(state.readText(confRel(state, existing, vmid), ""));
      const lock = conf.current.get("lock");
      if (lock) fail(`${emsg} ${typeWord(existing)} is locked (${lock})`, 255);
      conf.current.set("lock", "create");
      state.writeText(confRel(state, existing, vmid), serializeConf(conf));
      return;
    }
    state.writeText(confRel(state, type, vmid), "lock: create\n");
  });
}

function removeGuestConf(state, type, vmid) {
  state.remove(confRel(state, type, vmid));
  state.remove(join("run", "guests", `${vmid}.json`));
}

/** Runs `fn` with SIGTERM/SIGINT turned into the worker's `interrupted by signal` die. */
async function asWorker(fn, onInterrupt) {
  let interrupted = false;
  const handler = () => {
    interrupted = true;
  };
  process.on("SIGTERM", handler);
  process.on("SIGINT", handler);
  const check = () => {
    if (interrupted) throw new Error("interrupted by signal");
  };
  try {
    return await fn(check);
  } catch (e) {
    onInterrupt(e);
    throw e;
  } finally {
    process.off("SIGTERM", handler);
    process.off("SIGINT", handler);
  }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function slowPoint(state, check) {
  const slow = state.faults().slowRestore;
  const until = Date.now() + (slow?.delayMs ?? 0);
  while (Date.now() < until) {
    check();
    await sleep(Math.min(50, until - Date.now()));
  }
  check();
}

function restoredConfig(lines, { unique, overrides, mapVolume }) {
  const conf = parseConf(lines);
  const keys = conf.current;
  for (const k of ["lock", "parent", "digest"]) keys.delete(k);
  for (const k of [...keys.keys()]) if (/^unused\d+$/.test(k)) keys.delete(k);
  for (const [k, v] of keys) {
    if (/^net\d+$/.test(k) && unique) {
      // LXC: restore_configuration (`hwaddr=`); QEMU: restore_update_config_line (`<model>=<mac>`).
      keys.set(k, v.replace(/hwaddr=[0-9A-Fa-f:]+/, `hwaddr=${randomMac()}`).replace(/^((?:virtio|e1000|rtl8139|vmxnet3)=)[0-9A-Fa-f:]+/, `$1${randomMac()}`));
    }
    if (k === "vmgenid" && v !== "0") keys.set(k, crypto.randomUUID());
    if (k === "smbios1" && unique) keys.set(k, v.replace(/uuid=[0-9a-f-]+/, `uuid=${crypto.randomUUID()}`));
    const mapped = mapVolume(k, v);
    if (mapped !== undefined) keys.set(k, mapped);
  }
  for (const [k, v] of Object.entries(overrides)) if (v !== undefined) keys.set(k, String(v));
  return conf;
}

const LXC_RESTORE = { storage: "string", unique: "bool", start: "bool", force: "bool", description: "string", hostname: "string", pool: "string", bwlimit: "string", unprivileged: "bool", "ignore-unpack-errors": "bool", rootfs: "string", net0: "string", onboot: "bool", protection: "bool" };

/** pct restore (pve-container API2/LXC.pm create_vm with restore=1, LXC/Create.pm restore_archive / restore_configuration). */
export async function pctRestore(state, args) {
  const { opts, positional } = parsePve(args, LXC_RESTORE);
  const vmid = parseVmid(positional[0]);
  if (positional[1] === undefined) fail(["400 not enough arguments", "pct restore <vmid> <ostemplate> [OPTIONS]"], 255);
  const archive = resolveArchive(state, positional[1]);
  const emsg = `unable to restore CT ${vmid} -`;
  const exists = guestType(state, vmid);
  if (!(exists && opts.force)) {
    const used = vmidUsedMessage(state, vmid);
    if (used) fail(used, 255);
  } else if (runtime(state, vmid).status === "running") {
    fail("can't overwrite running container", 255);
  }
  if (opts.storage && !readStorages(state).get(opts.storage)) fail(`storage '${opts.storage}' does not exist`, 255);
  createAndLock(state, "lxc", vmid, opts.force, emsg);
  const created = [];
  let destroyConfigOnError = !exists;
  const oldConf = exists ? readConf(state, vmid).conf : undefined;
  try {
    await asWorker(
      async (check) => {
        out(`recovering backed-up configuration from '${positional[1]}'`);
        const bytes = archiveBytes(archive.path);
        const tmp = state.path("tmp", `restore-${process.pid}`);
        mkdirSync(tmp, { recursive: true });
        let backedUp;
        try {
          const r = spawnSync("tar", ["xf", "-", "-C", tmp, "./etc/vzdump/pct.conf"], { input: bytes });
          if (r.status !== 0) throw new Error(`unable to restore CT ${vmid} - unable to parse config from archive - no configuration file in archive`);
          backedUp = readFileSync(join(tmp, "etc", "vzdump", "pct.conf"), "utf8");
        } finally {
          rmSync(tmp, { recursive: true, force: true });
        }
        check();
        destroyConfigOnError = true;
        const orig = parseConf(backedUp).current;
        const rootValue = parseVolumeValue(orig.get("rootfs") ?? "local-lvm:x,size=8G");
        const storeid = opts.storage ?? rootValue.volid.split(":")[0];
        const rootVolid = allocVolume(state, storeid, vmid, "ct", 0, sizeOf(rootValue.opts.get("size")));
        created.push(rootVolid);
        const mpVolids = new Map();
        let n = 1;
        for (const [k, v] of orig) {
          if (!/^mp\d+$/.test(k)) continue;
          const mp = parseVolumeValue(v);
          if (!/^[A-Za-z][A-Za-z0-9_.-]*:/.test(mp.volid) || mp.opts.get("backup") !== "1") continue;
          const volid = allocVolume(state, opts.storage ?? mp.volid.split(":")[0], vmid, "ct", n++, sizeOf(mp.opts.get("size")));
          created.push(volid);
          mpVolids.set(k, volid);
        }
        if (oldConf) for (const v of backupVolumes("lxc", oldConf).filter((x) => x.isVolume)) freeVolume(state, v.volid);
        check();
        out(`restoring '${positional[1]}' now..`);
        out(`extracting archive '${archive.path}'`);
        await slowPoint(state, check);
        const root = volumeDataDir(state, rootVolid);
        const r = spawnSync("tar", ["xpf", "-", "--totals", "--sparse", "--numeric-owner", "--acls", "--xattrs", "-C", root, "--skip-old-files", "--anchored", "--exclude", "./dev/*"], { input: bytes, encoding: "buffer" });
        for (const line of r.stderr.toString("utf8").split("\n").filter(Boolean)) out(line);
        if (r.status !== 0) throw new Error(`command 'tar xpf - --totals --sparse --numeric-owner --acls --xattrs --skip-old-files --anchored --exclude './dev/*'' failed: exit code ${r.status}`);
        rmSync(join(root, "etc", "vzdump"), { recursive: true, force: true });
        check();
        out(`Detected container architecture: ${orig.get("arch") ?? "amd64"}`);
        out("merging backed-up and given configuration..");
        const conf = restoredConfig(backedUp, {
          unique: opts.unique,
          overrides: { description: opts.description, hostname: opts.hostname },
          mapVolume: (k, v) => {
            if (k === "rootfs") return [rootVolid, ...v.split(",").slice(1)].join(",");
            if (mpVolids.has(k)) return [mpVolids.get(k), ...v.split(",").slice(1)].join(",");
            return undefined;
          },
        });
        if (opts.description !== undefined) conf.description = [];
        state.writeText(confRel(state, "lxc", vmid), serializeConf(conf));
        state.setGuestRuntime(vmid, { status: "stopped", frozen: false, pid: 10000 + vmid });
      },
      (e) => {
        for (const volid of created) freeVolume(state, volid);
        if (e?.exitCode !== undefined && !destroyConfigOnError) return;
        if (destroyConfigOnError) removeGuestConf(state, "lxc", vmid);
        else updateConf(state, vmid, (c) => c.current.get("lock") === "create" && c.current.delete("lock"));
        if (e?.exitCode !== undefined) return;
        fail(`${emsg} ${e.message.replace(/^unable to restore CT \d+ - /, "")}`, 255);
      },
    );
  } catch (e) {
    if (e?.exitCode !== undefined) throw e;
    fail(`${emsg} ${e.message}`, 255);
  }
  if (opts.start) state.setGuestRuntime(vmid, { status: "running", frozen: false, pid: 10000 + vmid });
  return 0;
}

const QM_RESTORE = { storage: "string", unique: "bool", start: "bool", force: "bool", pool: "string", bwlimit: "string", "live-restore": "bool" };

/** qmrestore (qemu-server API2/Qemu.pm create_vm with archive, QemuServer.pm restore_vma_archive / restore_update_config_line). */
export async function qmrestore(state, args) {
  const { opts, positional } = parsePve(args, QM_RESTORE);
  if (positional.length < 2) fail(["400 not enough arguments", "qmrestore <archive> <vmid> [OPTIONS]"], 255);
  const vmid = parseVmid(positional[1]);
  const archive = resolveArchive(state, positional[0]);
  const emsg = `unable to restore VM ${vmid} -`;
  if (opts.storage && !readStorages(state).get(opts.storage)) fail(`storage '${opts.storage}' does not exist`, 255);
  createAndLock(state, "qemu", vmid, opts.force, emsg);
  if (runtime(state, vmid).status === "running") fail(`${emsg} vm is running`, 255);
  const oldConf = readConf(state, vmid)?.conf;
  const created = [];
  await asWorker(
    async (check) => {
      const bytes = archiveBytes(archive.path);
      if (bytes.subarray(0, 4).toString("latin1") !== "VMA\0") throw new Error("got unknown archive format");
      const end = bytes.indexOf(0, 4);
      const confText = bytes.subarray(4, end).toString("utf8");
      const data = bytes.subarray(end + 1);
      out(`restore vma archive: vma extract -v -r /var/tmp/vzdumptmp${process.pid}.fifo - /var/tmp/vzdumptmp${process.pid}`);
      out(`CFG: size: ${end - 4} name: qemu-server.conf`);
      const orig = parseConf(confText).current;
      const disks = backupVolumes("qemu", { current: orig }).filter((d) => d.included);
      const map = new Map();
      disks.forEach((d, i) => out(`DEV: dev_id=${i + 1} size: ${sizeOf(d.opts.get("size"))} devname: drive-${d.key}`));
      out(`CTIME: ${new Date().toString()}`);
      disks.forEach((d, i) => {
        const volid = allocVolume(state, opts.storage ?? d.volid.split(":")[0], vmid, "vm", i, sizeOf(d.opts.get("size")));
        created.push(volid);
        map.set(d.key, volid);
        out(`new volume ID is '${volid}'`);
        out(`map 'drive-${d.key}' to '${resolveVolume(state, volid, zfsModel(state)).path}' (write zeros = 0)`);
      });
      if (oldConf) for (const v of backupVolumes("qemu", oldConf).filter((x) => x.isVolume)) freeVolume(state, v.volid);
      await slowPoint(state, check);
      // The pseudo-VMA has no per-disk lengths: all disk bytes go to the first disk.
      if (created[0]) {
        const v = resolveVolume(state, created[0], zfsModel(state));
        const file = v.lv ? join(lvDataDir(state, v.lv.vg, v.lv.name), "disk.img") : v.dataset ? state.path("zvol-data", `${v.dataset.name}.img`) : v.path;
        mkdirSync(join(file, ".."), { recursive: true });
        spawnSync("dd", [`of=${file}`, "status=none"], { input: data });
      }
      const total = data.length;
      for (const p of [1, 50, 100]) out(`progress ${p}% (read ${Math.floor((total * p) / 100)} bytes, duration 0 sec)`);
      const zero = data.every((b) => b === 0) ? total : 0;
      out(`total bytes read ${total}, sparse bytes ${zero} (${total ? Math.round((zero * 100) / total) : 0}%)`);
      check();
      const conf = restoredConfig(confText, {
        unique: opts.unique,
        overrides: {},
        mapVolume: (k, v) => (map.has(k) ? [map.get(k), ...v.split(",").slice(1).filter((o) => !o.startsWith("format="))].join(",") : undefined),
      });
      state.writeText(confRel(state, "qemu", vmid), serializeConf(conf));
      state.setGuestRuntime(vmid, { status: "stopped", agentRunning: false, fsFrozen: false, pid: 20000 + vmid });
      out("rescan volumes...");
    },
    (e) => {
      for (const volid of created) freeVolume(state, volid);
      removeGuestConf(state, "qemu", vmid);
      if (e?.exitCode === undefined) fail(`${emsg} ${e.message}`, 255);
    },
  );
  if (opts.start) {
    out("Execute autostart");
    state.setGuestRuntime(vmid, { status: "running" });
  }
  return 0;
}

/** pct destroy / qm destroy (pve-container API2/LXC.pm destroy_vm, qemu-server API2/Qemu.pm destroy_vm). */
export function destroy(state, type, args) {
  const { opts, positional } = parsePve(args, type === "lxc" ? { purge: "bool", force: "bool", "destroy-unreferenced-disks": "bool" } : { purge: "bool", skiplock: "bool", "destroy-unreferenced-disks": "bool" });
  const vmid = parseVmid(positional[0]);
  if (guestType(state, vmid) !== type) fail(`Configuration file 'nodes/${state.node()}/${type === "lxc" ? "lxc" : "qemu-server"}/${vmid}.conf' does not exist`, 255);
  const { conf } = readConf(state, vmid);
  const word = typeWord(type);
  if (conf.current.get("protection") === "1") fail(`can't remove ${word} ${vmid} - protection mode enabled`, 255);
  const lock = conf.current.get("lock");
  if (lock && !(type === "qemu" && opts.skiplock)) fail(`${word} is locked (${lock})`, 255);
  const running = runtime(state, vmid).status !== "stopped";
  if (running) {
    if (type === "qemu") fail(`VM ${vmid} is running - destroy failed`, 255);
    if (!opts.force) fail(`unable to destroy CT ${vmid} - container is running`, 255);
    process.stderr.write(`forced to stop CT ${vmid} before destroying!\n`);
  }
  for (const v of backupVolumes(type, conf)) if (v.isVolume) freeVolume(state, v.volid);
  for (const [k, v] of conf.current) if (/^unused\d+$/.test(k)) freeVolume(state, v);
  // destroy-unreferenced-disks: every storage is scanned for volumes owned by the vmid that the
  // config does not name (a restore killed before it wrote them into the config leaves such).
  if (opts["destroy-unreferenced-disks"]) for (const volid of ownedVolumes(state, vmid)) freeVolume(state, volid);
  if (opts.purge) out(`purging ${word} ${vmid} from related configurations..`);
  removeGuestConf(state, type, vmid);
  state.remove(join("var", "lib", "lxc", String(vmid)));
  return 0;
}

/** The volumes of every storage whose name says they belong to the vmid (`vm-<id>-disk-N`, `subvol-<id>-disk-N`, `images/<id>/…`). */
function ownedVolumes(state, vmid) {
  const owned = new RegExp(`^(vm|subvol)-${vmid}-disk-\\d+`);
  const result = [];
  for (const s of readStorages(state).values()) {
    if (s.type === "lvmthin" || s.type === "lvm") {
      const vg = s.props.get("vgname") ?? "pve";
      for (const lv of lvmModel(state).lvs) if (lv.vg === vg && owned.test(lv.name)) result.push(`${s.id}:${lv.name}`);
    } else if (s.type === "zfspool") {
      const pool = s.props.get("pool") ?? "rpool/data";
      for (const d of zfsModel(state).data.datasets) if (d.name.startsWith(`${pool}/`) && owned.test(d.name.slice(pool.length + 1))) result.push(`${s.id}:${d.name.slice(pool.length + 1)}`);
    } else if (s.type === "dir") {
      const dir = join(s.props.get("path") ?? "/var/lib/vz", "images", String(vmid));
      for (const f of existsSync(dir) ? readdirSync(dir) : []) result.push(`${s.id}:${vmid}/${f}`);
    }
  }
  return result;
}

/** pct mount: mounts the container's volumes at /var/lib/lxc/<vmid>/rootfs (here under the state dir) and sets `lock: mounted`. */
export function mount(state, args) {
  const { positional } = parsePve(args, {});
  const vmid = parseVmid(positional[0]);
  if (guestType(state, vmid) !== "lxc") fail(`Configuration file 'nodes/${state.node()}/lxc/${vmid}.conf' does not exist`, 255);
  const { conf } = readConf(state, vmid);
  const lock = conf.current.get("lock");
  if (lock) fail(`CT is locked (${lock})`, 255);
  const root = parseVolumeValue(conf.current.get("rootfs") ?? "").volid;
  const target = state.path("var", "lib", "lxc", String(vmid), "rootfs");
  mkdirSync(join(target, ".."), { recursive: true });
  rmSync(target, { recursive: true, force: true });
  spawnSync("ln", ["-s", volumeDataDir(state, root), target]);
  updateConf(state, vmid, (c) => c.current.set("lock", "mounted"));
  out(`mounted CT ${vmid} in '${target}'`);
  return 0;
}

export function unmount(state, args) {
  const { positional } = parsePve(args, {});
  const vmid = parseVmid(positional[0]);
  if (guestType(state, vmid) !== "lxc") fail(`Configuration file 'nodes/${state.node()}/lxc/${vmid}.conf' does not exist`, 255);
  state.remove(join("var", "lib", "lxc", String(vmid), "rootfs"));
  updateConf(state, vmid, (c) => c.current.get("lock") === "mounted" && c.current.delete("lock"));
  return 0;
}

/** pct set / qm set <vmid> --<key> <value> [--delete k1,k2]: refused under a lock (check_lock). */
export function set(state, type, args) {
  const changes = {};
  let del = [];
  let description;
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (!a.startsWith("--")) continue;
    const key = a.slice(2);
    const value = args[++i];
    if (value === undefined) fail(["400 Parameter verification failed.", `${key}: parameter requires a value`], 255);
    if (key === "delete") del = value.split(",");
    else if (key === "description") description = value;
    else if (/^(net\d+|hostname|memory|cores|onboot|name|tags)$/.test(key)) changes[key] = value;
    else fail([`Unknown option: ${key}`, "400 unable to parse option"], 255);
  }
  const vmid = parseVmid(args.find((a) => !a.startsWith("--") && /^\d+$/.test(a)));
  if (guestType(state, vmid) !== type) fail(`Configuration file 'nodes/${state.node()}/${type === "lxc" ? "lxc" : "qemu-server"}/${vmid}.conf' does not exist`, 255);
  updateConf(state, vmid, (conf) => {
    const lock = conf.current.get("lock");
    if (lock) fail(`${typeWord(type)} is locked (${lock})`, 255);
    for (const [k, v] of Object.entries(changes)) conf.current.set(k, v);
    for (const k of del) conf.current.delete(k);
    if (description !== undefined) conf.description = description.split("\n");
  });
  return 0;
}

/** pvesh get /cluster/nextid [--vmid N] (pve-manager API2/Cluster.pm nextid). */
export function nextid(state, vmidOpt, format) {
  const used = new Set(["lxc", "qemu"].flatMap((t) => listIds(state, t)));
  if (vmidOpt !== undefined) {
    if (!used.has(Number(vmidOpt))) return print(String(vmidOpt), format);
    fail(["400 Parameter verification failed.", `vmid: VM ${vmidOpt} already exists`], 255);
  }
  const lower = state.options().nextIdLower ?? 100;
  for (let i = lower; i < 1_000_000; i++) if (!used.has(i)) return print(String(i), format);
  fail(`unable to get any free VMID in range [${lower}, 1000000]`, 255);
}

function listIds(state, type) {
  const dir = state.path("etc", "pve", "nodes", state.node(), type === "lxc" ? "lxc" : "qemu-server");
  if (!existsSync(dir)) return [];
  return readdirSync(dir).filter((f) => /^\d+\.conf$/.test(f)).map((f) => Number(f.slice(0, -5)));
}

// The API returns the id as a JSON string (`"105"`): the number was last used as a hash key.
function print(id, format) {
  out(format === "json" || format === "json-pretty" ? JSON.stringify(id) : id);
  return 0;
}

const BACKUP_FILE = /^(vzdump-(lxc|qemu|openvz)-(\d+)-(\d{4})_(\d{2})_(\d{2})-(\d{2})_(\d{2})_(\d{2})\.(tgz|(?:tar|vma)(?:\.(?:gz|lzo|zst))?))$/;

/**
 * The backups of a storage as pve-storage lists them (Storage.pm volume_list → Plugin.pm
 * list_volumes/get_subdir_files; PBSPlugin list_volumes for a `pbs:` storage), sorted by volid.
 */
export function backupContent(state, storeid, vmidFilter) {
  const storage = readStorages(state).get(storeid);
  if (!storage) fail(`storage '${storeid}' does not exist`, 255);
  const result = [];
  if (storage.type === "pbs") {
    const root = state.path("pbs", storeid);
    for (const kind of ["ct", "vm"]) {
      for (const id of existsSync(join(root, kind)) ? readdirSync(join(root, kind)) : []) {
        if (vmidFilter !== undefined && Number(id) !== vmidFilter) continue;
        for (const time of readdirSync(join(root, kind, id))) {
          const dir = join(root, kind, id, time);
          const size = readdirSync(dir).reduce((n, f) => n + statSync(join(dir, f)).size, 0);
          const entry = { content: "backup", ctime: Math.floor(Date.parse(time) / 1000), format: `pbs-${kind}`, size, subtype: kind === "ct" ? "lxc" : "qemu", vmid: Number(id), volid: `${storeid}:backup/${kind}/${id}/${time}` };
          if (existsSync(join(dir, ".protected"))) entry.protected = 1;
          result.push(entry);
        }
      }
    }
  } else {
    const target = dumpDirOf(state, storeid);
    if (target.error) fail(target.error, 255);
    for (const f of existsSync(target.dir) ? readdirSync(target.dir) : []) {
      const m = BACKUP_FILE.exec(f);
      if (!m) continue;
      const vmid = Number(m[3]);
      if (vmidFilter !== undefined && vmid !== vmidFilter) continue;
      const path = join(target.dir, f);
      const st = statSync(path);
      if (!st.isFile()) continue;
      // archive_info: the ctime is the file name's local time stamp.
      const ctime = Math.floor(new Date(Number(m[4]), Number(m[5]) - 1, Number(m[6]), Number(m[7]), Number(m[8]), Number(m[9])).getTime() / 1000);
      const entry = { content: "backup", ctime, format: m[10], size: st.size, subtype: m[2], vmid, volid: `${storeid}:backup/${f}` };
      if (existsSync(`${path}.notes`)) entry.notes = readFileSync(`${path}.notes`, "utf8").split("\n")[0];
      if (existsSync(`${path}.protected`)) entry.protected = 1;
      result.push(entry);
    }
  }
  return result.sort((a, b) => a.volid.toLowerCase().localeCompare(b.volid.toLowerCase()));
}

/** pvesh delete /nodes/<node>/storage/<store>/content/<volid> (Content.pm delete → vdisk_free, archive_auxiliaries_remove). */
export function deleteContent(state, storeid, volume) {
  const volid = volume.includes(":") ? volume : `${storeid}:${volume}`;
  const m = /^([^:]+):backup\/(.+)$/.exec(volid);
  if (!m) fail(`unable to parse volume ID '${volid}'`, 255);
  const storage = readStorages(state).get(m[1]);
  if (!storage) fail(`storage '${m[1]}' does not exist`, 255);
  if (storage.type === "pbs") {
    const dir = pbsSnapshotDir(state, m[1], m[2]);
    if (!existsSync(dir)) fail(`proxmox-backup-client failed: Error: unable to find snapshot '${m[2]}'`, 255);
    if (existsSync(join(dir, ".protected"))) fail(`cannot remove protected volume 'backup/${m[2]}' on '${m[1]}'`, 255);
    rmSync(dir, { recursive: true, force: true });
  } else {
    const target = dumpDirOf(state, m[1]);
    if (target.error) fail(target.error, 255);
    const path = join(target.dir, m[2]);
    if (!existsSync(path)) fail(`volume '${volid}' does not exist`, 255);
    if (existsSync(`${path}.protected`)) fail(`cannot remove protected volume 'backup/${m[2]}' on '${m[1]}'`, 255);
    rmSync(path, { force: true });
    const base = BACKUP_FILE.exec(m[2]);
    if (base) {
      const stem = m[2].replace(/\.(tgz|(?:tar|vma)(?:\.(?:gz|lzo|zst))?)$/, "");
      for (const aux of [`${stem}.log`, `${m[2]}.notes`]) rmSync(join(target.dir, aux), { force: true });
    }
  }
  out(`Removed volume '${volid}'`);
  return 0;
}

