// `pct` and `qm` of the fake toolbox: config (sorted, no digest; lxc.* last), status,
// start, unlock, list, delsnapshot (pct), guest fsfreeze commands and resume (qm).
// Unknown guests fail like the real CLI: "Configuration file 'nodes/<node>/lxc/<id>.conf' does not exist", exit 255.
// start (pve-container API2/LXC/Status.pm vm_start, qemu-server vm_start): prints nothing and marks
// the guest running; a locked guest fails with `CT is locked (<lock>)` / `VM is locked (<lock>)`
// unless --skiplock (pct also starts a guest under `lock: mounted`); a running guest fails with
// `CT <id> already running` (checked before the lock) / `VM <id> already running` (after it); exit 255.
// Injected fault: guestStartFail "<message>" (e.g. `startup for container '101' failed`).
// restore, destroy, mount, unmount and set: restore-commands.js.
// Not reproduced: pct stop, shutdown, snapshot, rollback, migrate; HA-managed starts;
// templates; config digests; pending changes.
import { fail, out, parsePve } from "./cli.js";
import { backupVolumes, guestType, keyLines, listGuests, readConf, runtime, updateConf, guestName } from "./guests.js";
import { removeStorageSnapshot } from "./snapshots.js";
import { destroy, mount, pctRestore, set, unmount } from "./restore-commands.js";

function requireGuest(state, type, vmidArg) {
  if (!/^\d+$/.test(vmidArg ?? "")) fail(["400 Parameter verification failed.", `vmid: type check ('integer') failed - got '${vmidArg ?? ""}'`], 255);
  const vmid = Number(vmidArg);
  if (guestType(state, vmid) !== type) {
    fail(`Configuration file 'nodes/${state.node()}/${type === "lxc" ? "lxc" : "qemu-server"}/${vmid}.conf' does not exist`, 255);
  }
  return { vmid, conf: readConf(state, vmid).conf };
}

function config(state, type, args) {
  const { opts, positional } = parsePve(args, { current: "bool", snapshot: "string" });
  const { conf } = requireGuest(state, type, positional[0]);
  let keys = conf.current;
  if (opts.snapshot !== undefined) {
    const snap = conf.snapshots.get(opts.snapshot);
    if (!snap) fail(`snapshot '${opts.snapshot}' does not exist`, 255);
    keys = snap.keys;
  }
  for (const line of keyLines(keys, { omit: ["digest"] })) out(line);
  return 0;
}

function status(state, type, args) {
  const { positional } = parsePve(args, { verbose: "bool" });
  const { vmid } = requireGuest(state, type, positional[0]);
  out(`status: ${runtime(state, vmid).status}`);
  return 0;
}

function start(state, type, args) {
  const { opts, positional } = parsePve(args, type === "lxc" ? { skiplock: "bool", debug: "bool" } : { skiplock: "bool", timeout: "int", machine: "string" });
  const { vmid, conf } = requireGuest(state, type, positional[0]);
  const status = runtime(state, vmid).status;
  const lock = conf.current.get("lock");
  if (type === "lxc") {
    if (status === "running") fail(`CT ${vmid} already running`, 255);
    if (lock && !opts.skiplock && lock !== "mounted") fail(`CT is locked (${lock})`, 255);
  } else {
    if (lock && !opts.skiplock) fail(`VM is locked (${lock})`, 255);
    if (status !== "stopped") fail(`VM ${vmid} already running`, 255);
  }
  const injected = state.faults().guestStartFail;
  if (injected) fail(injected, 255);
  state.setGuestRuntime(vmid, { status: "running", frozen: false });
  return 0;
}

function unlock(state, type, args) {
  const { positional } = parsePve(args, {});
  const { vmid } = requireGuest(state, type, positional[0]);
  updateConf(state, vmid, (conf) => conf.current.delete("lock"));
  return 0;
}

function list(state, type) {
  const ids = listGuests(state, type);
  if (type === "lxc") {
    if (ids.length > 0) out("VMID       Status     Lock         Name                ");
    for (const id of ids) {
      const { conf } = readConf(state, id);
      out(`${String(id).padEnd(10)} ${runtime(state, id).status.padEnd(10)} ${(conf.current.get("lock") ?? "").padEnd(12)} ${guestName("lxc", conf, id).padEnd(20)}`);
    }
  } else {
    if (ids.length > 0) out("      VMID NAME                 STATUS     MEM(MB)    BOOTDISK(GB) PID       ");
    for (const id of ids) {
      const { conf } = readConf(state, id);
      const rt = runtime(state, id);
      out(`${String(id).padStart(10)} ${guestName("qemu", conf, id).padEnd(20)} ${(rt.status === "stopped" ? "stopped" : "running").padEnd(10)} ${String(conf.current.get("memory") ?? 2048).padEnd(10)} ${"32.00".padStart(12)} ${String(rt.pid ?? 0).padEnd(10)}`);
    }
  }
  return 0;
}

/** pct delsnapshot <vmid> <snap> [--force]: removes the storage snapshots, then the config section. */
function delsnapshot(state, args) {
  const { opts, positional } = parsePve(args, { force: "bool" });
  const { vmid, conf } = requireGuest(state, "lxc", positional[0]);
  const name = positional[1];
  const snap = conf.snapshots.get(name ?? "");
  if (!snap) fail(`snapshot '${name ?? ""}' does not exist`, 255);
  const lock = conf.current.get("lock");
  if (lock && lock !== "snapshot-delete" && !opts.force) fail(`CT is locked (${lock})`, 255);
  let failed;
  for (const v of backupVolumes("lxc", { current: snap.keys }).filter((x) => x.included && x.isVolume)) {
    try {
      removeStorageSnapshot(state, v.volid, name);
    } catch (e) {
      failed = e;
    }
  }
  if (failed && !opts.force) fail(String(failed.message ?? failed), 255);
  updateConf(state, vmid, (c) => {
    c.snapshots.delete(name);
    if (c.current.get("parent") === name) {
      const parent = snap.keys.get("parent");
      if (parent) c.current.set("parent", parent);
      else c.current.delete("parent");
    }
    if (c.current.get("lock") === "snapshot-delete" || c.current.get("lock") === "snapshot") c.current.delete("lock");
  });
  return 0;
}

function guestCmd(state, args) {
  const [vmidArg, command] = args;
  const { vmid } = requireGuest(state, "qemu", vmidArg);
  const rt = runtime(state, vmid);
  if (rt.status !== "running" && rt.status !== "paused") fail(`VM ${vmid} is not running`, 255);
  if (!rt.agentRunning) fail("QEMU guest agent is not running", 255);
  switch (command) {
    case "fsfreeze-status":
      out(`"${rt.fsFrozen ? "frozen" : "thawed"}"`);
      return 0;
    case "fsfreeze-thaw":
      state.setGuestRuntime(vmid, { fsFrozen: false });
      out(rt.fsFrozen ? "2" : "0");
      return 0;
    case "fsfreeze-freeze":
      state.setGuestRuntime(vmid, { fsFrozen: true });
      out("2");
      return 0;
    case "ping":
      return 0;
    default:
      fail(`400 Parameter verification failed.\ncommand: value '${command ?? ""}' does not have a value in the enumeration`, 255);
  }
}

function resume(state, args) {
  const { positional } = parsePve(args, { skiplock: "bool", nocheck: "bool" });
  const { vmid } = requireGuest(state, "qemu", positional[0]);
  // QMP `cont`: a paused VM runs on; a `prelaunch` kvm (started paused for a backup) boots.
  if (["paused", "prelaunch"].includes(runtime(state, vmid).status)) state.setGuestRuntime(vmid, { status: "running" });
  return 0;
}

/** `qm stop <vmid> [--skiplock] [--timeout N]`: hard stop (vm_stop), refused under a lock without --skiplock. */
function stop(state, args) {
  const { opts, positional } = parsePve(args, { skiplock: "bool", timeout: "int", keepActive: "bool", "overrule-shutdown": "bool" });
  const { vmid, conf } = requireGuest(state, "qemu", positional[0]);
  const lock = conf.current.get("lock");
  if (lock && !opts.skiplock) fail(`VM is locked (${lock})`, 255);
  state.setGuestRuntime(vmid, { status: "stopped", fsFrozen: false });
  return 0;
}

export function pct(state, args) {
  const [sub, ...rest] = args;
  switch (sub) {
    case "config":
      return config(state, "lxc", rest);
    case "status":
      return status(state, "lxc", rest);
    case "start":
      return start(state, "lxc", rest);
    case "unlock":
      return unlock(state, "lxc", rest);
    case "list":
      return list(state, "lxc");
    case "delsnapshot":
      return delsnapshot(state, rest);
    case "restore":
      return pctRestore(state, rest);
    case "destroy":
      return destroy(state, "lxc", rest);
    case "mount":
      return mount(state, rest);
    case "unmount":
      return unmount(state, rest);
    case "set":
      return set(state, "lxc", rest);
    default:
      fail([`unknown command 'pct ${sub ?? ""}'`, "USAGE: pct <COMMAND> [ARGS] [OPTIONS]"], 255);
  }
}

export function qm(state, args) {
  const [sub, ...rest] = args;
  switch (sub) {
    case "config":
      return config(state, "qemu", rest);
    case "status":
      return status(state, "qemu", rest);
    case "start":
      return start(state, "qemu", rest);
    case "unlock":
      return unlock(state, "qemu", rest);
    case "list":
      return list(state, "qemu");
    case "resume":
      return resume(state, rest);
    case "stop":
      return stop(state, rest);
    case "destroy":
      return destroy(state, "qemu", rest);
    case "set":
      return set(state, "qemu", rest);
    case "guest":
      if (rest[0] !== "cmd") fail([`unknown command 'qm guest ${rest[0] ?? ""}'`], 255);
      return guestCmd(state, rest.slice(1));
    default:
      fail([`unknown command 'qm ${sub ?? ""}'`, "USAGE: qm <COMMAND> [ARGS] [OPTIONS]"], 255);
  }
}
