// vzdump's per-node global lock, as PVE::VZDump::getlock takes it: open `>>/var/run/vzdump.lock`
// (under the fake's root: run/vzdump.lock) and flock(LOCK_EX|LOCK_NB); when that fails, with
// lockwait 0 `can't acquire lock '/var/run/vzdump.lock' (wait = 0)`, else `trying to get global
// lock - waiting...` and a blocking flock(LOCK_EX) under alarm(lockwait*60): `got global lock` or
// `can't acquire lock '…' - got timeout`. The lock is a real flock(2), taken through util-linux
// flock(1) in a helper process of its own session (so a TERM to the worker's process group does not
// drop it) that holds it while its stdin stays open: the worker keeps the write end, and when the
// worker dies the kernel closes it, the helper ends and the lock is free — as the kernel drops a
// dead process's flock. Anyone may contend for it with flock(2) on the same file (the agent's sweep does).
// The UPID of the holder (the worker) goes to run/vzdump.pid, as the real one writes /var/run/vzdump.pid.
// Not reproduced: the helper is a second process (a `kill -9` of the worker releases the lock a
// moment later, when the helper notices the closed pipe, not at once).
import { spawn } from "node:child_process";
import { closeSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";

export const REAL_LOCK_FILE = "/var/run/vzdump.lock";

let holder;

/** One flock(1) attempt: resolves true once held, false when flock gave up (busy, or the wait timed out). */
function flockHelper(lockFile, waitSeconds) {
  const args = waitSeconds === 0 ? ["-n"] : ["-w", String(waitSeconds)];
  const child = spawn("flock", [...args, "-E", "75", lockFile, "sh", "-c", "echo locked; exec cat >/dev/null"], {
    stdio: ["pipe", "pipe", "ignore"],
    detached: true,
  });
  child.stdin.on("error", () => undefined);
  const taken = new Promise((resolve, reject) => {
    let out = "";
    child.stdout.setEncoding("utf8");
    child.stdout.on("data", (d) => {
      out += d;
      if (out.includes("locked\n")) resolve(true);
    });
    child.on("error", (e) => reject(new Error(`can't run flock(1) for the global lock - ${e.message}`)));
    child.on("exit", () => resolve(false));
  });
  return { child, taken };
}

export function releaseGlobalLock() {
  if (!holder) return;
  holder.stdin.end();
  holder = undefined;
}

/**
 * getlock(): immediate, or `trying to get global lock - waiting...` then up to lockwait minutes
 * (options.lockwaitMinuteMs scales a minute for tests), else throws the real error message.
 */
export async function getGlobalLock(ctx, lockwait) {
  const { state, log } = ctx;
  mkdirSync(state.path("run"), { recursive: true });
  const lockFile = state.path("run", "vzdump.lock");
  closeSync(openSync(lockFile, "a")); // ">>$lockfile": the file itself always stays
  const first = flockHelper(lockFile, 0);
  if (await first.taken) {
    holder = first.child;
    return;
  }
  if (!lockwait) {
    const msg = `can't acquire lock '${REAL_LOCK_FILE}' (wait = 0)`;
    log.err(msg);
    throw new Error(msg);
  }
  log.info("trying to get global lock - waiting...");
  const minute = state.options().lockwaitMinuteMs ?? 60_000;
  const waiting = flockHelper(lockFile, (lockwait * minute) / 1000);
  const got = await ctx.race(waiting.taken, () => waiting.child.kill("SIGKILL"));
  if (got) {
    holder = waiting.child;
    log.info("got global lock");
    return;
  }
  const msg = `can't acquire lock '${REAL_LOCK_FILE}' - got timeout`;
  log.err(msg);
  throw new Error(msg);
}

/** /proc/<pid>/stat field 22 (start time in clock ticks): the pstart of a UPID. */
export function processStartTicks(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return Number(fields[19]);
  } catch {
    return 0;
  }
}

/** Clock ticks a node up for options.uptimeDays more than this machine has (USER_HZ 100). */
function uptimeShift(state) {
  return Math.round((state.options().uptimeDays ?? 0) * 86_400 * 100);
}

const hex8 = (n) => n.toString(16).toUpperCase().padStart(8, "0");

/**
 * UPID:<node>:<pid>:<pstart>:<starttime>:vzdump:<id>:<user>: (PVE::UPID::encode, `%08X` each, so a
 * pstart past 2^32 ticks has 9 digits). The id is the vmid for one guest, empty for several
 * (PVE::API2::VZDump: `$taskid = $local_vmids->[0] if scalar(@$local_vmids) == 1`).
 * With options.uptimeDays, <state>/proc/<pid>/stat shows this process with the shifted start time.
 */
export function makeUpid(state, node, vmids) {
  const start = Math.floor(Date.now() / 1000);
  const shift = uptimeShift(state);
  const pstart = processStartTicks(process.pid) + shift;
  if (shift > 0) {
    const stat = readFileSync(`/proc/${process.pid}/stat`, "utf8");
    const head = stat.slice(0, stat.lastIndexOf(")") + 2);
    const fields = stat.slice(head.length).split(" ");
    fields[19] = String(pstart);
    const dir = state.path("proc", String(process.pid));
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, "stat"), head + fields.join(" "));
  }
  const id = vmids.length === 1 ? String(vmids[0]) : "";
  return `UPID:${node}:${hex8(process.pid)}:${hex8(pstart)}:${hex8(start)}:vzdump:${id}:root@pam:`;
}

/** The shifted /proc entry of this process goes when it ends (a killed one's stays, like a stale pid file). */
export function dropProcView(state) {
  rmSync(state.path("proc", String(process.pid)), { recursive: true, force: true });
}
