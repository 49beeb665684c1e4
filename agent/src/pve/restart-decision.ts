// Whether the crash cleanup starts a guest that vzdump shut down in stop mode and never started
// again (vzdump and the agent died between the shutdown and `post-restart`). Pure: the cleanup
// gathers the facts (./guest-restart.ts), this decides, the cleanup acts.
//
//   start  only when all hold: vzdump had shut the guest down for a job (a `pre-stop` in stop mode
//          was recorded, and a `pre-stop` only comes for a running guest) and never reached
//          `post-restart`; no vzdump runs now; the guest still had vzdump's `lock: backup` and the
//          cleanup cleared it — or vzdump's own cleanup had cleared it (its `pre-restart` came,
//          which it runs after unlocking; or this agent signalled that vzdump and watched it exit:
//          exec_backup_task's clean-up unlocks the guest first in every run, and a TERM during
//          vm_stop's wait for the socket, during the `pre-restart` hook or during the start skips
//          the restart without a trace the agent could see); and the guest is stopped now.
//   leave  (settled, with the reason on the job): vzdump started it itself; the guest is gone from
//          this node; it carries another lock; its lock was removed by someone else (Proxmox
//          refuses to start or stop a guest under `lock: backup`, so an operator who started or
//          stopped it must have unlocked it first); it is not stopped now.
//   wait   (stays open for the next cleanup): a vzdump runs; the `lock: backup` could not be cleared;
//          or the guest still runs although vzdump was asked to shut it down and never got past
//          stop_vm (no archive line): `qm shutdown` / `lxc-stop` was killed with vzdump, but the guest
//          had been asked to power off and may go down on its own time — watched for
//          `shutdownWatchMs` from the shutdown (vzdump's `stopwait`), then left as it is.
//
// A lock released since the shutdown counts as vzdump's (not an operator's) when this agent saw it
// go: its TERM ended the vzdump whose clean-up unlocked the guest, or its own cleanup cleared it
// (`releasedAt`, kept on the record so a later recheck decides the same).

export type RestartAction = "start" | "leave" | "wait";

export interface RestartDecision {
  action: RestartAction;
  /** Why, for the log and the job's note. */
  reason: string;
}

export interface RestartFacts {
  /** What the vzdump run recorded. */
  shutdown: {
    shutdownAt?: number | undefined;
    restartBegunAt?: number | undefined;
    restartedAt?: number | undefined;
    /** vzdump's archive line came after the shutdown: stop_vm had returned. */
    stopReturnedAt?: number | undefined;
    /** An earlier cleanup or this agent's TERM released the guest's lock for this record. */
    releasedAt?: number | undefined;
  };
  /** Now, and how long after the shutdown a guest that still runs is awaited (vzdump's stopwait). */
  now?: number;
  shutdownWatchMs?: number;
  /** A vzdump process runs on this node (its pid file names a live process). */
  vzdumpRunning: boolean;
  /**
   * This agent sent the run's vzdump TERM (cancel, timeout) and saw it exit: a `lock: backup` gone
   * since the shutdown was vzdump's own clean-up, not an operator's.
   */
  signalledByAgent?: boolean;
  /** The guest as the cleanup found it; undefined when it is not on this node any more. */
  guest?:
    | {
        /** Its `lock:` before the cleanup touched it. */
        lockBefore?: string | undefined;
        /** The cleanup removed that `lock: backup` (`pct|qm unlock`). */
        lockCleared: boolean;
        /** `pct|qm status` after the unlock: running, stopped, paused, … */
        status: string;
      }
    | undefined;
}

export function decideRestart(facts: RestartFacts): RestartDecision {
  const { shutdown, guest } = facts;
  if (shutdown.restartedAt !== undefined) return { action: "leave", reason: "vzdump started it again itself (post-restart)" };
  if (facts.vzdumpRunning) return { action: "wait", reason: "a vzdump runs on this node; the next cleanup decides" };
  if (guest === undefined) return { action: "leave", reason: "the guest is no longer on this node" };
  if (guest.lockBefore === "backup" && !guest.lockCleared) {
    return { action: "wait", reason: "its lock: backup could not be cleared; the next cleanup tries again" };
  }
  if (guest.lockBefore !== undefined && guest.lockBefore !== "backup") {
    return { action: "leave", reason: `it is locked (${guest.lockBefore}) by another operation` };
  }
  const releasedByUs = facts.signalledByAgent === true || shutdown.releasedAt !== undefined;
  if (guest.lockBefore === undefined && shutdown.restartBegunAt === undefined && !releasedByUs) {
    return { action: "leave", reason: "its lock: backup was removed since the shutdown, not by vzdump: someone else has taken the guest over" };
  }
  if (guest.status !== "stopped") {
    const watchUntil = shutdown.shutdownAt !== undefined && facts.shutdownWatchMs !== undefined ? shutdown.shutdownAt + facts.shutdownWatchMs : undefined;
    const mayStillGoDown = shutdown.stopReturnedAt === undefined && shutdown.restartBegunAt === undefined && guest.status === "running";
    if (mayStillGoDown && watchUntil !== undefined && facts.now !== undefined && facts.now < watchUntil) {
      return {
        action: "wait",
        reason: `it still runs, but vzdump ended while shutting it down (no archive line after stop_vm): it may still power off; watched until ${new Date(watchUntil).toISOString()}`,
      };
    }
    return { action: "leave", reason: `it is ${guest.status} now` };
  }
  return { action: "start", reason: startReason(facts) };
}

function startReason({ shutdown, guest, signalledByAgent }: RestartFacts): string {
  if (guest?.lockBefore === "backup") return "vzdump shut it down (stop mode) and ended before starting it again";
  if (shutdown.restartBegunAt !== undefined) return "vzdump shut it down (stop mode) and ended in its own cleanup, before starting it again";
  if (signalledByAgent === true) return "vzdump shut it down (stop mode); stopped by this agent, its clean-up unlocked it and did not start it again";
  return shutdown.stopReturnedAt === undefined
    ? "vzdump asked it to shut down (stop mode) and ended before the shutdown finished; it powered off afterwards"
    : "vzdump shut it down (stop mode) and ended before starting it again; its lock was released by an earlier cleanup";
}
