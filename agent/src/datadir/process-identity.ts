// Who a pid is: the process's start time in clock ticks since boot (field 22 of /proc/<pid>/stat).
// A pid alone is ambiguous once the process is gone (the kernel reuses pids); pid + start time
// names one process for the life of the boot.
import { readFileSync } from "node:fs";

export interface ProcessIdentity {
  pid: number;
  /** Field 22 of /proc/<pid>/stat; undefined where /proc is not available. */
  startTicks?: string | undefined;
}

/** The start time of `pid` in clock ticks since boot, or undefined when there is no such process (or no /proc). */
export function processStartTicks(pid: number): string | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return undefined;
  }
  // The command name (field 2) is in parentheses and may itself hold spaces or ')'.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // fields[0] is field 3 (state), so field 22 is fields[19].
  const ticks = fields[19];
  return ticks !== undefined && /^\d+$/.test(ticks) ? ticks : undefined;
}

export function currentProcessIdentity(): ProcessIdentity {
  return { pid: process.pid, startTicks: processStartTicks(process.pid) };
}

/**
 * Whether `who` still names a running process: the pid exists and, when a start time was recorded,
 * it started at that time (so a pid the kernel gave to an unrelated process does not count).
 */
export function isSameProcessRunning(who: ProcessIdentity): boolean {
  const now = processStartTicks(who.pid);
  if (now === undefined) return false;
  return who.startTicks === undefined || who.startTicks === now;
}
