// What a job of the agent may leave behind when something crashed, found from real state: staging
// copies, btrfs snapshots, partial archives, mounts, and processes the agent started (tar, zstd,
// cp, btrfs) that outlived it. Invariant 3: none of these outlives its job.
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";

/** The environment variable the harness sets on the agent so its descendants can be recognised. */
export const SCRATCH_ENV = "LULL_TEST_SCRATCH";

export interface LeftoverScope {
  /** The agent's name prefix (`lull-`). */
  prefix: string;
  stagingDir: string;
  archiveDir: string;
  /** Parents of btrfs volumes: their `.lull-snapshots/` must hold nothing with the prefix. */
  snapshotParents?: readonly string[];
  /** Lists every btrfs subvolume (absolute paths), to catch snapshots outside the expected place. */
  listSubvolumes?: () => Promise<string[]>;
  /** The test's scratch dir: mounts under it other than `allowedMounts` are leftovers. */
  scratch: string;
  allowedMounts?: readonly string[];
  /** Processes with `LULL_TEST_SCRATCH=<scratch>` in their environment other than these are leftovers. */
  knownPids: readonly number[];
}

async function entries(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw err;
  }
}

/** Mount points (decoded) from /proc/self/mountinfo. */
export async function mountPoints(): Promise<string[]> {
  const text = await readFile("/proc/self/mountinfo", "utf8");
  return text
    .split("\n")
    .map((l) => l.split(" ")[4])
    .filter((p): p is string => p !== undefined)
    .map((p) => p.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))));
}

/** Pids (and their command lines) whose environment holds `name=value`, except this process. */
export async function processesWithEnv(name: string, value: string): Promise<Array<{ pid: number; cmdline: string }>> {
  const needle = Buffer.from(`${name}=${value}\0`);
  const found: Array<{ pid: number; cmdline: string }> = [];
  for (const entry of await entries("/proc")) {
    const pid = Number(entry);
    if (!Number.isInteger(pid) || pid === process.pid) continue;
    try {
      const environ = await readFile(`/proc/${pid}/environ`);
      if (!environ.includes(needle)) continue;
      const stat = await readFile(`/proc/${pid}/stat`, "utf8");
      const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
      if (state === "Z" || state === "X") continue; // a zombie holds nothing
      const cmdline = (await readFile(`/proc/${pid}/cmdline`, "utf8")).split("\0").filter(Boolean).join(" ");
      found.push({ pid, cmdline });
    } catch {
      // gone meanwhile, or not readable
    }
  }
  return found;
}

/** Everything in scope that should not be there; empty when clean. */
export async function findLeftovers(scope: LeftoverScope): Promise<string[]> {
  const found: string[] = [];
  for (const name of await entries(scope.stagingDir)) {
    if (name.startsWith(scope.prefix)) found.push(`staging: ${join(scope.stagingDir, name)}`);
  }
  for (const name of await entries(scope.archiveDir)) {
    if (name.startsWith(`${scope.prefix}partial-`)) found.push(`partial archive: ${join(scope.archiveDir, name)}`);
  }
  for (const parent of scope.snapshotParents ?? []) {
    const dir = join(parent, ".lull-snapshots");
    for (const name of await entries(dir)) {
      if (name.startsWith(scope.prefix)) found.push(`snapshot: ${join(dir, name)}`);
    }
  }
  if (scope.listSubvolumes) {
    for (const path of await scope.listSubvolumes()) {
      if (path.includes("/.lull-snapshots/")) found.push(`btrfs subvolume: ${path}`);
    }
  }
  const allowed = new Set(scope.allowedMounts ?? []);
  for (const mount of await mountPoints()) {
    if (mount.startsWith(`${scope.scratch}/`) && !allowed.has(mount)) found.push(`mount: ${mount}`);
  }
  const known = new Set(scope.knownPids);
  for (const p of await processesWithEnv(SCRATCH_ENV, scope.scratch)) {
    if (!known.has(p.pid)) found.push(`process ${p.pid}: ${p.cmdline}`);
  }
  return found;
}
