// exec_backup_task of the fake vzdump: one guest, in the real order —
//   Starting Backup / status / lock_vm / [snapshot: prepare, `mode failure` → suspend] / backup mode /
//   mode steps with their hooks (stop, suspend, snapshot) / archive to .dat, rename / size /
//   notes, protected, prune / backup-end / cleanup: unlock, plugin cleanup, pre-restart + resume
//   or restart + post-restart / Finished or `ERROR: Backup of VM <id> failed - <err>` + backup-abort /
//   log-end.
// A guest that is not running gets stop mode and only backup-start, backup-end, log-end.
// Not reproduced: `stopwait`, templates, `protected` limits, the tmpdir option and /var/tmp/vzdumptmp<pid>_<vmid>.
import { existsSync, mkdirSync, rmSync, unlinkSync } from "node:fs";
import { join } from "node:path";
import { localStamp } from "../cli.js";
import { guestName, guestType, readConf, updateConf } from "../guests.js";
import { compressExt } from "./archive.js";
import { runHook } from "./hooks.js";
import { archiveStamp, formatSize, formatTime } from "./log.js";
import { lxcPlugin } from "./lxc.js";
import { pruneBackups, writeSidecars } from "./sidecars.js";
import { qemuPlugin } from "./qemu.js";

function lockVm(ctx, task) {
  updateConf(ctx.state, task.vmid, (conf) => {
    const lock = conf.current.get("lock");
    if (lock) throw new Error(`${task.vmtype === "lxc" ? "CT" : "VM"} is locked (${lock})`);
    conf.current.set("lock", "backup");
  });
}

function unlockVm(ctx, task) {
  updateConf(ctx.state, task.vmid, (conf) => {
    if (conf.current.get("lock") === "backup") conf.current.delete("lock");
  });
}

function setNames(ctx, task) {
  const kind = task.vmtype === "lxc" ? "tar" : "vma";
  const basename = `vzdump-${task.vmtype}-${task.vmid}-${archiveStamp()}`;
  task.basename = basename;
  if (ctx.pbs) {
    // exec_backup_task: TARGET is the PBS snapshot `ct|vm/<vmid>/<%FT%TZ of the backup time>`;
    // no LOGFILE, no .dat, the temporary dir in /var/tmp.
    if (ctx.opts.stdout) throw new Error("unable to pipe backup to stdout");
    const btime = new Date(Math.floor(Date.now() / 1000) * 1000).toISOString().replace(/\.\d{3}Z$/, "Z");
    task.backupTime = Math.floor(Date.parse(btime) / 1000);
    task.target = `${task.vmtype === "lxc" ? "ct" : "vm"}/${task.vmid}/${btime}`;
    task.tmpdir = ctx.state.path("var", "tmp", `vzdumptmp${process.pid}_${task.vmid}`);
    return;
  }
  if (ctx.opts.stdout) return;
  task.target = join(ctx.dumpdir, `${basename}.${kind}${compressExt(ctx.opts.compress)}`);
  // exec_backup_task: `$task->{tmptar} =~ s/\.[^\.]+$/\.dat/` — `….tar.zst` → `….tar.dat`, `….tar` → `….dat`.
  task.tmptar = task.target.replace(/\.[^./]+$/, ".dat");
  task.tmpdir = join(ctx.dumpdir, `${basename}.tmp`);
  task.logfile = join(ctx.dumpdir, `${basename}.log`);
}

async function modeSteps(ctx, task, plugin, running) {
  const hook = (phase) => runHook(ctx, phase, task);
  const { log } = ctx;
  if (task.mode === "stop") {
    await plugin.prepare(ctx, task);
    await hook("backup-start");
    if (running) {
      log.info("stopping virtual guest");
      task.vmstoptime = Date.now();
      await hook("pre-stop");
      await plugin.stopVm(ctx, task);
      task.cleanup.restart = true;
    }
  } else if (task.mode === "suspend") {
    await plugin.prepare(ctx, task);
    await hook("backup-start");
    if (task.vmtype === "lxc") await plugin.copyPhase1(ctx, task);
    log.info("suspending guest");
    task.vmstoptime = Date.now();
    await hook("pre-stop");
    await plugin.suspendVm(ctx, task);
    task.cleanup.resume = true;
    if (task.vmtype === "lxc") {
      await plugin.copyPhase2(ctx, task);
      log.info("resuming guest");
      task.cleanup.resume = false;
      await hook("pre-restart");
      await plugin.resumeVm(ctx, task);
      await hook("post-restart");
      onlineAgain(ctx, task);
    }
  } else {
    await hook("backup-start");
    await hook("pre-stop");
    if (task.snapshotCount > 1) {
      log.info("suspend vm to make snapshot");
      task.vmstoptime = Date.now();
      await plugin.suspendVm(ctx, task);
      task.cleanup.resume = true;
    }
    await plugin.snapshot(ctx, task);
    await hook("pre-restart");
    if (task.snapshotCount > 1) {
      log.info("resume vm");
      task.cleanup.resume = false;
      await plugin.resumeVm(ctx, task);
      onlineAgain(ctx, task);
    }
    await hook("post-restart");
  }
}

function onlineAgain(ctx, task) {
  if (task.vmstoptime === undefined) return;
  ctx.log.info(`guest is online again after ${Math.round((Date.now() - task.vmstoptime) / 1000)} seconds`);
}

async function cleanupTask(ctx, task, plugin) {
  if (task.cleanup.unlock) {
    try {
      unlockVm(ctx, task);
    } catch (e) {
      ctx.log.perlWarn(String(e.message));
    }
  }
  try {
    await plugin.cleanup(ctx, task);
  } catch (e) {
    ctx.log.perlWarn(String(e.message));
  }
  if (!task.cleanup.resume && !task.cleanup.restart) return;
  try {
    await runHook(ctx, "pre-restart", task);
    if (task.cleanup.resume) {
      ctx.log.info("resume vm");
      await plugin.resumeVm(ctx, task);
    } else if (!plugin.isRunning(ctx, task.vmid)) {
      ctx.log.info("restarting vm");
      await plugin.startVm(ctx, task);
    }
    await runHook(ctx, "post-restart", task);
    onlineAgain(ctx, task);
  } catch (e) {
    ctx.log.perlWarn(String(e.message)); // resume/restart skipped: the real pitfall
  }
}

/** Backs up one guest; returns true on success. Never throws (the job goes on to the next guest). */
export async function backupGuest(ctx, vmid) {
  const { state, log } = ctx;
  const vmtype = guestType(state, vmid);
  if (vmtype === undefined) {
    // exec_backup_task's first statement: `die "unable to find VM '$vmid'\n" if !$plugin` — no
    // task log yet, no hook (backup-abort needs the plugin's task), the job ends with errors.
    log.err(`Backup of VM ${vmid} failed - unable to find VM '${vmid}'`);
    log.info(`Failed at ${localStamp()}`);
    return false;
  }
  const plugin = vmtype === "lxc" ? lxcPlugin : qemuPlugin;
  const task = { vmid, vmtype, mode: ctx.opts.mode ?? "snapshot", cleanup: {} };
  const started = Date.now();
  log.openGuestLog(state.path("var", "log", "vzdump", `${vmtype}-${vmid}.log`));
  log.info(`Starting Backup of VM ${vmid} (${vmtype})`);
  log.info(`Backup started at ${localStamp()}`);
  let error;
  try {
    ctx.checkpoint();
    task.conf = readConf(state, vmid).conf;
    // LXC: `$conf->{hostname} || "CT$vmid"`; QEMU: `$conf->{name}` (unset for an unnamed VM, so no HOSTNAME).
    task.hostname = vmtype === "lxc" ? guestName(vmtype, task.conf, vmid) : task.conf.current.get("name");
    setNames(ctx, task);
    if (task.tmpdir) {
      // exec_backup_task: `rmtree $task->{tmpdir}; mkdir $task->{tmpdir}` in every mode (the plugins
      // keep the guest config there); removed after the clean-up — a SIGKILL leaves it.
      rmSync(task.tmpdir, { recursive: true, force: true });
      mkdirSync(task.tmpdir, { recursive: true });
    }
    const running = plugin.isRunning(ctx, vmid);
    log.info(`status = ${running ? "running" : "stopped"}`);
    lockVm(ctx, task);
    task.cleanup.unlock = true;
    let mode = running ? task.mode : "stop";
    if (mode === "snapshot") {
      try {
        await plugin.prepare(ctx, task, "snapshot");
      } catch (e) {
        if (!/^mode failure/.test(e.message)) throw e;
        log.info(e.message);
        log.info("trying 'suspend' mode instead");
        mode = "suspend";
      }
    }
    task.mode = mode;
    log.info(`backup mode: ${mode}`);
    if (ctx.opts.bwlimit) log.info(`bandwidth limit: ${ctx.opts.bwlimit} KiB/s`);
    log.info(`ionice priority: ${ctx.opts.ionice ?? 7}`);
    await modeSteps(ctx, task, plugin, running);
    ctx.checkpoint();
    if (ctx.opts.stdout) log.info("sending archive to stdout");
    else log.info(`creating ${ctx.pbs ? "Proxmox Backup Server" : "vzdump"} archive '${task.target}'`);
    task.size = await plugin.archive(ctx, task);
    if (!ctx.opts.stdout && !ctx.pbs) log.info(`archive file size: ${formatSize(task.size)}`);
    if (!ctx.pbs) {
      writeSidecars(ctx, task);
      pruneBackups(ctx, task);
    }
    await runHook(ctx, "backup-end", task);
  } catch (e) {
    error = ctx.interrupted ? new Error("interrupted by signal") : e;
  }
  ctx.inCleanup = true; // cleanup, backup-abort and log-end run even after a signal
  await cleanupTask(ctx, task, plugin);
  // `unlink $task->{tmptar} if -f`; `rmtree $task->{tmpdir} if -d`: an interrupted run leaves neither.
  try {
    if (task.tmptar && existsSync(task.tmptar)) unlinkSync(task.tmptar);
    if (task.tmpdir) rmSync(task.tmpdir, { recursive: true, force: true });
  } catch (e) {
    log.perlWarn(String(e.message));
  }
  if (error) {
    log.err(`Backup of VM ${vmid} failed - ${error.message}`);
    log.info(`Failed at ${localStamp()}`);
    try {
      await runHook(ctx, "backup-abort", task);
    } catch (e) {
      log.warn(e.message);
    }
  } else {
    log.info(`Finished Backup of VM ${vmid} (${formatTime((Date.now() - started) / 1000)})`);
    log.info(`Backup finished at ${localStamp()}`);
  }
  log.closeGuestLog(task.logfile);
  try {
    await runHook(ctx, "log-end", task);
  } catch (e) {
    log.warn(e.message);
  }
  ctx.inCleanup = false;
  return !error;
}
