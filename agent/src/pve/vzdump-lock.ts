// vzdump's own per-node global lock, held by the crash cleanup for its whole sweep: vzdump takes
// flock(LOCK_EX) on /var/run/vzdump.lock before it touches any guest (PVE::VZDump::getlock, after
// job-init), and pvescheduler starts jobs every minute — so a sweep that only looked at the pid file
// once could unlock, thaw or restart a guest under a vzdump that started meanwhile. While the sweep
// holds this lock, a starting vzdump waits (`trying to get global lock - waiting...`, up to its
// --lockwait) or, with lockwait 0, fails `can't acquire lock`.
// Node has no flock(2): util-linux flock(1) takes it, on the same file, with the same semantics, and
// holds it while its stdin stays open (the agent keeps the write end; if the agent dies the kernel
// closes it and the lock is free, as with vzdump's own). Taken without waiting: a lock that is
// held means a vzdump runs (or waits in job-init's successor), and the sweep leaves its guests alone.
import { LullError, type Launcher } from "@lull/shared";

export interface HeldLock {
  release(): Promise<void>;
}

/** How long taking the lock may take (flock(1) starting), not a wait for the holder. */
const TAKE_TIMEOUT_MS = 10_000;

/**
 * Takes vzdump's global lock without waiting: the held lock, or undefined when someone holds it.
 * Throws LULL_E_COMMAND_FAILED when flock(1) cannot run (the sweep then does not touch guests).
 */
export async function tryVzdumpLock(launcher: Launcher, lockFile: string): Promise<HeldLock | undefined> {
  let taken!: (held: boolean) => void;
  const result = new Promise<boolean>((resolve) => (taken = resolve));
  const proc = launcher.launch("flock", ["-n", "-E", "75", lockFile, "sh", "-c", "echo locked; exec cat >/dev/null"], {
    stdin: true,
    stopGraceMs: 1_000,
    onLine: (line, stream) => {
      if (stream === "stdout" && line === "locked") taken(true);
    },
  });
  const timer = setTimeout(() => proc.kill(), TAKE_TIMEOUT_MS);
  void proc.exit.then(() => taken(false));
  const held = await result;
  clearTimeout(timer);
  if (held) {
    return {
      release: async () => {
        proc.endInput();
        await proc.exit;
      },
    };
  }
  const exit = await proc.exit;
  if (exit.exitCode === 75) return undefined;
  const why = exit.startError ?? (exit.signal !== undefined ? `killed by ${exit.signal}` : `exit ${exit.exitCode}`);
  throw new LullError("LULL_E_COMMAND_FAILED", `cannot take vzdump's global lock ${lockFile} with flock(1) (${why}); is util-linux installed and the directory writable?`);
}
