// vzdump's per-node global lock: flock(LOCK_EX) on /var/run/vzdump.lock, emulated here with a
// holder file naming the holder's pid (a dead holder's lock is free, as the kernel drops a dead
// process's flock). Messages are the real ones (they name /var/run/vzdump.lock). The UPID of the
// holder goes to run/vzdump.pid, as the real one writes /var/run/vzdump.pid.
// Not reproduced: a real flock (two contenders for a stale holder file race in a window of microseconds).
import { closeSync, openSync, readFileSync, unlinkSync, writeSync, mkdirSync } from "node:fs";
import { pidAlive } from "../state.js";

export const REAL_LOCK_FILE = "/var/run/vzdump.lock";

function readHolder(file) {
  try {
    return Number(readFileSync(file, "utf8").trim());
  } catch {
    return 0;
  }
}

function tryTake(state) {
  mkdirSync(state.path("run"), { recursive: true });
  const lockFile = state.path("run", "vzdump.lock");
  closeSync(openSync(lockFile, "a")); // ">>$lockfile": the file itself always stays
  const holderFile = `${lockFile}.holder`;
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fd = openSync(holderFile, "wx");
      writeSync(fd, String(process.pid));
      closeSync(fd);
      return true;
    } catch (err) {
      if (err.code !== "EEXIST") throw err;
      const holder = readHolder(holderFile);
      if (holder === process.pid) return true;
      if (holder > 0 && pidAlive(holder)) return false;
      try {
        unlinkSync(holderFile); // stale: its holder died
      } catch {
        // somebody else cleared it first
      }
    }
  }
  return false;
}

export function releaseGlobalLock(state) {
  const holderFile = state.path("run", "vzdump.lock.holder");
  if (readHolder(holderFile) === process.pid) {
    try {
      unlinkSync(holderFile);
    } catch {
      // already gone
    }
  }
}

/**
 * getlock(): immediate, or `trying to get global lock - waiting...` then up to lockwait minutes
 * (options.lockwaitMinuteMs scales a minute for tests), else throws the real error message.
 */
export async function getGlobalLock(ctx, lockwait) {
  const { state, log } = ctx;
  if (tryTake(state)) return;
  if (!lockwait) {
    const msg = `can't acquire lock '${REAL_LOCK_FILE}' (wait = 0)`;
    log.err(msg);
    throw new Error(msg);
  }
  log.info("trying to get global lock - waiting...");
  const minute = state.options().lockwaitMinuteMs ?? 60_000;
  const deadline = Date.now() + lockwait * minute;
  while (Date.now() < deadline) {
    await ctx.sleep(Math.min(100, Math.max(1, deadline - Date.now())));
    if (tryTake(state)) {
      log.info("got global lock");
      return;
    }
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

const hex8 = (n) => n.toString(16).toUpperCase().padStart(8, "0");

/** UPID:<node>:<pid>:<pstart>:<starttime>:vzdump:<id>:<user>: */
export function makeUpid(node, vmids) {
  const start = Math.floor(Date.now() / 1000);
  return `UPID:${node}:${hex8(process.pid)}:${hex8(processStartTicks(process.pid))}:${hex8(start)}:vzdump:${vmids.join(",")}:root@pam:`;
}
