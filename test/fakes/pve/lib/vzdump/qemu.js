// The QEMU plugin of the fake vzdump (qemu-server's VZDump/QemuServer.pm). No storage snapshot:
// the archive step logs `creating vzdump archive`, the guest-agent freeze (or its skip line:
// disabled in VM options / not running / already frozen, none in stop mode or for a paused VM;
// the old wording per options.qgaWording "new"|"old"), `starting backup via QMP command`,
// thaw, `started backup task '<uuid>'`, `resuming VM again[ after N seconds]`, then progress lines
// `INFO:  12% (… of …) in 9s, read: …, write: …` (when the percent changed and
// options.progressIntervalMs — 2000 like the real one — passed), `backup is sparse`, `transferred`.
// The .vma is not the real VMA format: a `VMA\0` magic, the config, then the disks' bytes.
// Disk contents: <lv data dir>/disk.img or zvol-data/<dataset>.img if present, else
// options.qemuDiskBytes (default 1 MiB) of zeros. Injected faults: qgaFreezeFail, prelaunchHoldMs.
// Not reproduced: fleecing, dirty bitmaps, PBS, `left-over backup job` cancelling, real QMP/QGA timeouts.
import { randomUUID } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { Readable } from "node:stream";
import { backupVolumes, keyLines, runtime } from "../guests.js";
import { lvDataDir } from "../lvm.js";
import { resolveVolume } from "../storage.js";
import { zfsModel } from "../zfs.js";
import { writeArchive, writePbsArchive } from "./archive.js";
import { renderBytes, renderDuration } from "./log.js";

function diskBytes(ctx, info) {
  let file;
  if (info.lv) file = join(lvDataDir(ctx.state, info.lv.vg, info.lv.name), "disk.img");
  else if (info.dataset) file = ctx.state.path("zvol-data", `${info.dataset.name}.img`);
  else file = info.path;
  if (file && existsSync(file)) return readFileSync(file);
  return Buffer.alloc(ctx.state.options().qemuDiskBytes ?? 1024 * 1024);
}

function agentConfigured(conf) {
  const agent = conf.current.get("agent");
  if (!agent) return false;
  const parts = agent.split(",");
  const enabled = parts.some((p) => p === "1" || p === "enabled=1");
  const noFreeze = parts.some((p) => p === "freeze-fs=0" || p === "freeze-fs-on-backup=0");
  return enabled && !noFreeze;
}

// qemu-server's VZDump::QemuServer::qga_fs_freeze and QemuServer::Agent's
// guest_fs_freeze_applicable / guest_fs_freeze: nothing at all in stop mode or for a VM that was
// paused; else one skip line per reason (new wording; the old one only knew "not running"), or
// the freeze with its two failure wordings (logerr: the backup goes on and thaw is still sent).
function qgaFreeze(ctx, task) {
  const { log, state } = ctx;
  if (task.mode === "stop" || !task.vmWasRunning || task.vmWasPaused) return false;
  const oldWording = (state.options().qgaWording ?? "new") === "old";
  if (!agentConfigured(task.conf)) {
    if (!oldWording) log.info("skipping guest filesystem freeze - disabled in VM options");
    return false;
  }
  const rt = runtime(state, task.vmid);
  // qga_check_running pings the agent: a VM vzdump suspended itself (suspend mode) does not answer.
  if (rt.status !== "running" || !rt.agentRunning) {
    if (oldWording) log.info("skipping guest-agent 'fs-freeze', agent configured but not running?");
    else log.info("skipping guest filesystem freeze - agent configured but not running?");
    return false;
  }
  if (rt.fsFrozen && !oldWording) {
    log.info("skipping guest filesystem freeze - already frozen");
    return false;
  }
  log.info("issuing guest-agent 'fs-freeze' command");
  const fail = state.faults().qgaFreezeFail;
  if (fail === "error") {
    log.err("unable to freeze guest fs - The command guest-fsfreeze-freeze has been disabled for this instance");
    return true; // thaw is still sent
  }
  if (fail === "status") {
    log.err("querying status after freezing guest fs failed - timeout after 60 minutes");
    return true;
  }
  if (fail) {
    log.err(`VM ${task.vmid} qmp command 'guest-fsfreeze-freeze' failed - got timeout`);
    return true;
  }
  state.setGuestRuntime(task.vmid, { fsFrozen: true });
  return true;
}

function qgaThaw(ctx, task) {
  ctx.log.info("issuing guest-agent 'fs-thaw' command");
  ctx.state.setGuestRuntime(task.vmid, { fsFrozen: false });
}

export const qemuPlugin = {
  isRunning: (ctx, vmid) => ["running", "paused", "prelaunch"].includes(runtime(ctx.state, vmid).status),

  async prepare(ctx, task, mode) {
    const { log, state } = ctx;
    if (task.hostname !== undefined) log.info(`VM Name: ${task.hostname}`);
    const status = runtime(state, task.vmid).status;
    task.vmWasRunning = status === "running" || status === "paused";
    task.vmWasPaused = status === "paused";
    task.volumes = [];
    for (const v of backupVolumes("qemu", task.conf)) {
      const size = v.opts.get("size") ?? "";
      if (!v.included) {
        log.info(`exclude disk '${v.key}' '${v.volid}' (backup=no)`);
        continue;
      }
      log.info(`include disk '${v.key}' '${v.volid}' ${size}`.trimEnd());
      task.volumes.push({ ...v, info: resolveVolume(state, v.volid, zfsModel(state)) });
    }
    if (mode === "snapshot" && state.faults().snapshotPrepareFail) {
      throw new Error(`mode failure - ${state.faults().snapshotPrepareFail}`);
    }
    task.snapshotCount = 0;
  },

  async snapshot() {
    // no storage snapshot for VMs: the backup job's copy-before-write is the point in time
  },
  async suspendVm(ctx, task) {
    ctx.state.setGuestRuntime(task.vmid, { status: "paused" });
  },
  async resumeVm(ctx, task) {
    if (runtime(ctx.state, task.vmid).status === "paused") ctx.state.setGuestRuntime(task.vmid, { status: "running" });
  },
  // PVE::VZDump::QemuServer::stop_vm: `qm shutdown <id> --skiplock --keepActive --timeout <wait>`
  // through $self->cmd (run_command, not in an eval). A TERM dies out of it: stop_vm throws, so the
  // restart flag is never set — but the guest was asked to power down and goes down anyway
  // (options.shutdownMs): vzdump's cleanup does not start it again.
  async stopVm(ctx, task) {
    const ms = ctx.state.options().shutdownMs ?? 0;
    if (ms <= 0) {
      ctx.state.setGuestRuntime(task.vmid, { status: "stopped" });
      return;
    }
    ctx.state.setGuestRuntime(task.vmid, { shutdownDoneAt: Date.now() + ms });
    await ctx.race(
      (async () => {
        while (ctx.state.guestRuntime(task.vmid)?.status !== "stopped") await new Promise((r) => setTimeout(r, 20));
      })(),
    );
  },
  async startVm(ctx, task) {
    ctx.state.setGuestRuntime(task.vmid, { status: "running" });
  },

  async archive(ctx, task) {
    const { log, state } = ctx;
    const wasStopped = runtime(state, task.vmid).status === "stopped";
    if (wasStopped) {
      // enforce_vm_running_for_backup: vm_start with paused => 1 — QMP says `prelaunch` (never ran), not `paused`.
      log.info("starting kvm to execute backup task");
      state.setGuestRuntime(task.vmid, { status: "prelaunch" });
      // The time between the paused start and the QMP backup job (real runs: qga checks, fleecing
      // setup, `backup` on a slow storage): a crash in it leaves the kvm in prelaunch.
      const hold = state.faults().prelaunchHoldMs;
      if (hold) await ctx.sleep(hold);
    }
    const frozen = qgaFreeze(ctx, task);
    if ((state.options().qmpStartLine ?? true) === true) log.info("starting backup via QMP command");
    const disks = task.volumes.map((v) => diskBytes(ctx, v.info));
    if (frozen) qgaThaw(ctx, task);
    log.info(`started backup task '${randomUUID()}'`);
    if (!wasStopped || task.mode !== "stop" || task.cleanup.restart) {
      if (task.vmstoptime !== undefined) {
        log.info(`resuming VM again after ${Math.round((Date.now() - task.vmstoptime) / 1000)} seconds`);
        task.vmstoptime = undefined; // "avoid printing 'online after ..' twice": no `guest is online again` later
      } else log.info("resuming VM again");
      state.setGuestRuntime(task.vmid, { status: "running" });
    }
    // PBS: the same QMP backup job (format pbs) and the same progress lines; the data goes to the server.
    const source = Readable.from(this.vmaChunks(ctx, task, disks));
    const size = ctx.pbs ? await writePbsArchive(ctx, task, source, "disks.img") : await writeArchive(ctx, task, source);
    if (wasStopped && !task.cleanup.restart) {
      log.info("stopping kvm after backup task");
      state.setGuestRuntime(task.vmid, { status: "stopped" });
    }
    return size;
  },

  *vmaChunks(ctx, task, disks) {
    const total = disks.reduce((n, d) => n + d.length, 0);
    const interval = ctx.state.options().progressIntervalMs ?? 2000;
    const started = Date.now();
    let done = 0;
    let zero = 0;
    let lastPercent = -1;
    let lastAt = 0;
    const progress = (force) => {
      const percent = total === 0 ? 100 : Math.floor((done * 100) / total);
      const now = Date.now();
      if (!force && (percent === lastPercent || now - lastAt < interval)) return;
      lastPercent = percent;
      lastAt = now;
      const secs = Math.max(1, (now - started) / 1000);
      const rate = renderBytes(done / secs);
      const pct = String(percent).padStart(3);
      ctx.log.info(`${pct}% (${renderBytes(done)} of ${renderBytes(total)}) in ${renderDuration((now - started) / 1000)}, read: ${rate}/s, write: ${rate}/s`);
    };
    yield Buffer.concat([Buffer.from("VMA\0"), Buffer.from(`${keyLines(task.conf.current, { omit: ["lock"] }).join("\n")}\n\0`)]);
    progress(true);
    const chunk = 64 * 1024;
    for (const disk of disks) {
      for (let i = 0; i < disk.length; i += chunk) {
        const piece = disk.subarray(i, i + chunk);
        if (piece.every((b) => b === 0)) zero += piece.length;
        done += piece.length;
        yield piece;
        progress(false);
      }
    }
    if (lastPercent !== 100) progress(true);
    const secs = Math.max(1, Math.round((Date.now() - started) / 1000));
    ctx.log.info(`backup is sparse: ${renderBytes(zero, 2)} (${total === 0 ? 0 : Math.round((zero * 100) / total)}%) total zero data`);
    ctx.log.info(`transferred ${renderBytes(done, 2)} in ${secs} seconds (${renderBytes(done / secs)}/s)`);
  },

  async cleanup() {},
};
