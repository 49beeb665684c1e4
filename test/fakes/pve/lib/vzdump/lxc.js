// The LXC plugin of the fake vzdump (pve-container's VZDump/LXC.pm): prepare (CT Name,
// including/excluding mount points, snapshot checks, `found old vzdump snapshot (force removal)`),
// snapshot() = `create storage snapshot 'vzdump'` under `lock: snapshot` with a `[vzdump]`
// section, cgroup freeze around the volume snapshots, commit (`parent: vzdump`), read-only
// "mount" at /mnt/vzsnap0 (a copy under the state dir); suspend mode's two syncs into
// <dumpdir>/<basename>.tmp; tar of the tree (with ./etc/vzdump/pct.conf) and `--totals`;
// cleanup: umount, `cleanup temporary 'vzdump' snapshot`, removal of the storage snapshots.
// Injected faults: snapshotPrepareFail "<msg>" (→ mode failure → suspend), pauseWhileFrozenMs.
// Not reproduced: rsync statistics, unprivileged id mapping, device/bind mount checks, stopwait timeouts.
import { cpSync, existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { spawn } from "node:child_process";
import { join } from "node:path";
import { backupVolumes, keyLines, runtime, updateConf } from "../guests.js";
import { pidAlive } from "../state.js";
import { createStorageSnapshot, liveDataDir, removeStorageSnapshot, snapshotDataDir } from "../snapshots.js";
import { resolveVolume } from "../storage.js";
import { zfsModel } from "../zfs.js";
import { writeArchive, writePbsArchive } from "./archive.js";
import { renderBytes } from "./log.js";

const SNAP = "vzdump";

function mountRoot(ctx) {
  return ctx.state.path("mnt", "vzsnap0");
}

/** vzdump's mounts live in its own namespace and vanish when it dies: a dead owner's tree goes. */
function clearDeadMounts(ctx) {
  const owner = Number(ctx.state.readText("run/vzsnap0.owner", "0"));
  if (owner && owner !== process.pid && !pidAlive(owner)) ctx.state.remove("mnt/vzsnap0");
}

function copyTree(from, to) {
  mkdirSync(to, { recursive: true });
  if (!from || !existsSync(from)) return;
  for (const entry of readdirSync(from)) {
    if (entry === ".zfs") continue;
    cpSync(join(from, entry), join(to, entry), { recursive: true, preserveTimestamps: true });
  }
}

/** Lays the volumes out as they appear inside the CT (rootfs at /, mpN at their mp). */
function mountVolumes(ctx, task, dirOf) {
  const root = mountRoot(ctx);
  ctx.state.writeText("run/vzsnap0.owner", String(process.pid));
  for (const v of task.volumes) copyTree(dirOf(v), join(root, v.mp));
  return root;
}

function deleteVzdumpSnapshot(ctx, task, conf, { force }) {
  const section = conf.snapshots.get(SNAP);
  let failure;
  const volumes = section ? backupVolumes("lxc", { current: section.keys }).filter((v) => v.included && v.isVolume) : [];
  for (const v of volumes) {
    try {
      for (const line of removeStorageSnapshot(ctx.state, v.volid, SNAP)) ctx.log.raw(line);
    } catch (e) {
      failure = e;
    }
  }
  if (failure && !force) throw failure;
  updateConf(ctx.state, task.vmid, (c) => {
    c.snapshots.delete(SNAP);
    if (c.current.get("parent") === SNAP) c.current.delete("parent");
  });
  return failure;
}

/**
 * VZDump::LXC::archive to a PBS storage: `proxmox-backup-client backup pct.conf:… root.pxar:<snapdir>`
 * run through PBSPlugin::run_raw_client_cmd, each output line logged as INFO. The lines are the
 * client's (`create_backup`: Starting backup, Client name, Starting backup protocol, No previous
 * manifest available., Upload config file / Upload directory; BackupWriter::upload_stream:
 * `<archive>: had to backup X of Y (compressed Z) in N.NNs`, average backup speed; Uploaded backup
 * catalog; Duration; End Time). The "pxar" stored is the tar stream (the fake is not a PBS).
 */
async function pbsBackup(ctx, task, tar, exited, stderr, src, confRoot) {
  const { log } = ctx;
  const repo = ctx.pbs.repository;
  const started = Date.now();
  log.info(`Starting backup: ${task.target}`);
  log.info(`Client name: ${ctx.state.node()}`);
  log.info(`Starting backup protocol: ${new Date().toString()}`);
  log.info("No previous manifest available.");
  log.info(`Upload config file '${join(confRoot, "etc", "vzdump", "pct.conf")}' to '${repo}' as pct.conf.blob`);
  log.info(`Upload directory '${src}' to '${repo}' as root.pxar.didx`);
  const size = await writePbsArchive(ctx, task, tar.stdout, "root.pxar");
  const code = await exited;
  if (code !== 0) throw new Error(`command 'proxmox-backup-client backup' failed: exit code ${code} (${stderr.join("").trim()})`);
  const secs = Math.max(0.01, (Date.now() - started) / 1000);
  log.info(`root.pxar: had to backup ${renderBytes(size, 3)} of ${renderBytes(size, 3)} (compressed ${renderBytes(Math.ceil(size / 3), 3)}) in ${secs.toFixed(2)}s`);
  log.info(`root.pxar: average backup speed: ${renderBytes(size / secs, 3)}/s`);
  log.info(`Uploaded backup catalog (${renderBytes(1024, 3)})`);
  log.info(`Duration: ${secs.toFixed(2)}s`);
  log.info(`End Time: ${new Date().toString()}`);
  return size;
}

export const lxcPlugin = {
  isRunning: (ctx, vmid) => runtime(ctx.state, vmid).status === "running",

  async prepare(ctx, task, mode) {
    const { log, state } = ctx;
    log.info(`CT Name: ${task.hostname}`);
    task.volumes = [];
    for (const v of backupVolumes("lxc", task.conf)) {
      if (!v.isVolume && v.key !== "rootfs") {
        log.info(`excluding bind mount point ${v.key} ('${v.mp}') from backup (not a volume)`);
      } else if (!v.included) {
        log.info(`excluding volume mount point ${v.key} ('${v.mp}') from backup (disabled)`);
      } else {
        log.info(`including mount point ${v.key} ('${v.mp}') in backup`);
        task.volumes.push({ ...v, info: resolveVolume(state, v.volid, zfsModel(state)) });
      }
    }
    if (mode !== "snapshot") return;
    const injected = state.faults().snapshotPrepareFail;
    if (injected) throw new Error(`mode failure - ${injected}`);
    if (task.volumes.some((v) => !v.info.snapshots)) throw new Error("mode failure - some volumes do not support snapshots");
    if (task.conf.snapshots.has(SNAP)) {
      log.info("found old vzdump snapshot (force removal)");
      deleteVzdumpSnapshot(ctx, task, task.conf, { force: true });
    }
    clearDeadMounts(ctx);
    if (existsSync(mountRoot(ctx)) && readdirSync(mountRoot(ctx)).length > 0) throw new Error("mountpoint '/mnt/vzsnap0' not empty");
    task.snapshotCount = task.volumes.length;
  },

  async snapshot(ctx, task) {
    const { log, state } = ctx;
    log.info(`create storage snapshot '${SNAP}'`);
    const running = this.isRunning(ctx, task.vmid);
    updateConf(state, task.vmid, (conf) => {
      conf.current.set("lock", "snapshot");
      const keys = new Map([...conf.current].filter(([k]) => k !== "lock" && k !== "parent"));
      keys.set("snapstate", "prepare");
      if (conf.current.get("parent")) keys.set("parent", conf.current.get("parent"));
      conf.snapshots.set(SNAP, { description: ["vzdump backup snapshot"], keys });
    });
    if (running) state.setGuestRuntime(task.vmid, { frozen: true });
    const pause = state.faults().pauseWhileFrozenMs;
    if (pause) await ctx.sleep(pause);
    try {
      for (const v of task.volumes) for (const line of createStorageSnapshot(state, v.volid, SNAP)) log.raw(line);
    } catch (e) {
      if (running) state.setGuestRuntime(task.vmid, { frozen: false });
      log.perlWarn("snapshot create failed: starting cleanup");
      const conf = updateConf(state, task.vmid, (c) => c);
      const cleanupErr = deleteVzdumpSnapshot(ctx, task, conf, { force: true });
      if (cleanupErr) log.perlWarn(cleanupErr.message);
      updateConf(state, task.vmid, (c) => c.current.set("lock", "backup"));
      throw e;
    }
    if (running) state.setGuestRuntime(task.vmid, { frozen: false });
    updateConf(state, task.vmid, (conf) => {
      const section = conf.snapshots.get(SNAP);
      section.keys.delete("snapstate");
      section.keys.set("snaptime", String(Math.floor(Date.now() / 1000)));
      conf.current.set("parent", SNAP);
      conf.current.set("lock", "backup");
    });
    task.snapshotTaken = true;
    mountVolumes(ctx, task, (v) => snapshotDataDir(state, v.volid, SNAP));
  },

  async suspendVm(ctx, task) {
    ctx.state.setGuestRuntime(task.vmid, { frozen: true });
  },
  async resumeVm(ctx, task) {
    ctx.state.setGuestRuntime(task.vmid, { frozen: false });
  },
  // PVE::VZDump::LXC::stop_vm → PVE::LXC::vm_stop: `lxc-stop -n <id> --nokill --timeout <stopwait*60>`
  // in `eval { run_command(...) }`. A TERM while it waits kills lxc-stop, and the worker's
  // "interrupted by signal" die is caught by that eval and only warned; vm_stop then polls the
  // container's command socket until it closes and returns normally: the signal is lost, and
  // vzdump goes on (restart flag set) with the backup. The container goes down on its own time
  // (options.shutdownMs), since lxc-stop had already asked it to.
  async stopVm(ctx, task) {
    const ms = ctx.state.options().shutdownMs ?? 0;
    if (ms <= 0) {
      ctx.state.setGuestRuntime(task.vmid, { status: "stopped", frozen: false });
      return;
    }
    ctx.state.setGuestRuntime(task.vmid, { shutdownDoneAt: Date.now() + ms });
    await ctx.swallowingInterrupts(async () => {
      while (ctx.state.guestRuntime(task.vmid)?.status !== "stopped") await new Promise((r) => setTimeout(r, 20));
    });
  },
  async startVm(ctx, task) {
    ctx.state.setGuestRuntime(task.vmid, { status: "running" });
  },

  async copyPhase1(ctx, task) {
    await this.sync(ctx, task, "first");
  },
  async copyPhase2(ctx, task) {
    await this.sync(ctx, task, "final");
  },
  async sync(ctx, task, which) {
    const pid = runtime(ctx.state, task.vmid).pid ?? 4242;
    const started = Date.now();
    ctx.log.info(`starting ${which} sync /proc/${pid}/root/ to ${task.tmpdir}`);
    rmSync(task.tmpdir, { recursive: true, force: true });
    for (const v of task.volumes) copyTree(liveDataDir(ctx.state, v.volid), join(task.tmpdir, v.mp));
    ctx.log.info(`${which} sync finished (${Math.round((Date.now() - started) / 1000)} seconds)`);
  },

  async archive(ctx, task) {
    let src;
    if (task.mode === "snapshot") src = mountRoot(ctx);
    else if (task.mode === "suspend") src = task.tmpdir;
    else src = mountVolumes(ctx, task, (v) => liveDataDir(ctx.state, v.volid));
    const confRoot = ctx.state.path("tmp", `vzdumptmp${process.pid}_${task.vmid}`);
    mkdirSync(join(confRoot, "etc", "vzdump"), { recursive: true });
    const confLines = keyLines(task.conf.current, { omit: ["lock", "parent", "digest"] });
    writeFileSync(join(confRoot, "etc", "vzdump", "pct.conf"), `${confLines.join("\n")}\n`);
    const args = ["cpf", "-", "--totals", "--one-file-system", "-p", "--sparse", "--numeric-owner", "--warning=no-file-ignored",
      `--directory=${confRoot}`, "./etc/vzdump/pct.conf", `--directory=${src}`, "--no-anchored", "--exclude=lost+found",
      "--anchored", "--exclude=./tmp/?*", "--exclude=./var/tmp/?*", "--exclude=./var/run/?*.pid", "./"];
    const tar = spawn("tar", args, { stdio: ["ignore", "pipe", "pipe"] });
    const stderr = [];
    tar.stderr.setEncoding("utf8").on("data", (d) => stderr.push(d));
    const exited = new Promise((resolve) => tar.on("close", (code) => resolve(code)));
    try {
      if (ctx.pbs) return await pbsBackup(ctx, task, tar, exited, stderr, src, confRoot);
      const size = await writeArchive(ctx, task, tar.stdout);
      const code = await exited;
      for (const line of stderr.join("").split("\n").filter(Boolean)) ctx.log.info(line);
      if (code !== 0) throw new Error(`command 'tar ${args.join(" ")}' failed: exit code ${code}`);
      return size;
    } finally {
      tar.kill("SIGKILL");
      rmSync(confRoot, { recursive: true, force: true });
    }
  },

  async cleanup(ctx, task) {
    if (task.mode === "snapshot" || task.mode === "stop") {
      ctx.state.remove("mnt/vzsnap0"); // umount -l -d
      ctx.state.remove("run/vzsnap0.owner");
    }
    if (task.mode === "suspend" && task.tmpdir) rmSync(task.tmpdir, { recursive: true, force: true });
    if (!task.snapshotTaken) return;
    ctx.log.info(`cleanup temporary '${SNAP}' snapshot`);
    const conf = updateConf(ctx.state, task.vmid, (c) => c);
    try {
      deleteVzdumpSnapshot(ctx, task, conf, { force: false });
    } catch {
      ctx.log.warn(`snapshot '${SNAP}' was not (fully) removed`);
    }
  },
};
