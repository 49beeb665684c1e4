// An ephemeral replica: a scratch directory `<scratchDir>/<prefix>verify-<run>` holding what a
// verification restored (`root/`), the server's private socket (`sock/`) and a state file that
// names everything else the replica owns outside the directory (a scratch vmid). It is torn down on
// every path: the run's own `finally` (success, failure, timeout, cancel) and, after an agent crash,
// the sweep at start, which finds replicas by the agent's prefix alone.
//
// Every process started for a replica carries `LULL_REPLICA=<dir>` in its environment (PostgreSQL
// and its children inherit it), so teardown and the sweep find and kill them by that mark in
// /proc/<pid>/environ — no pid file that a crash could leave stale, no process matched by name.
import { chmod, mkdir, readFile, readdir, rename, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { CommandRunner } from "@lull/shared";
import { readMountTable, mountsBelow, unmount } from "../storage/mounts.js";
import { removeTree } from "../storage/remove-tree.js";
import { destroyCreatedGuest, guestConfig } from "../pve/guest-restore.js";
import { isReplicaGuest } from "./vzdump-replica.js";

export const REPLICA_ENV = "LULL_REPLICA";
const STATE_FILE = "replica.json";

export interface ReplicaState {
  runId: string;
  pointId: string;
  guestId: string;
  /** The spare port the replica's server uses (names its private socket). */
  port: number;
  /** A scratch guest restored for the replica (vzdump points): destroyed with `--purge` at teardown. */
  vmid?: number | undefined;
  vmType?: "lxc" | "qemu" | undefined;
  createdAt: number;
}

export interface Replica {
  dir: string;
  /** Where the point's volumes appear: `<root>/<volume name>/…`. */
  root: string;
  /** The private socket directory of a server started on the replica. */
  socketDir: string;
  state: ReplicaState;
}

export const replicaPrefix = (prefix: string) => `${prefix}verify-`;
export const replicaDir = (scratchDir: string, prefix: string, runId: string) => join(scratchDir, `${replicaPrefix(prefix)}${runId}`);

/** Creates the replica's directories (0700) and writes its state before anything else is made. */
export async function createReplica(scratchDir: string, prefix: string, state: ReplicaState): Promise<Replica> {
  const dir = replicaDir(scratchDir, prefix, state.runId);
  // 0711: a check's server runs as its own user and must reach its replica; no one lists the others.
  await mkdir(scratchDir, { recursive: true, mode: 0o711 });
  await chmod(scratchDir, 0o711);
  await mkdir(dir, { mode: 0o700 });
  const replica: Replica = { dir, root: join(dir, "root"), socketDir: join(dir, "sock"), state };
  await mkdir(replica.root, { mode: 0o700 });
  await mkdir(replica.socketDir, { mode: 0o700 });
  await saveReplicaState(replica);
  return replica;
}

/** Writes the state file atomically (a scratch vmid is recorded before the guest is created). */
export async function saveReplicaState(replica: Replica): Promise<void> {
  const tmp = join(replica.dir, `${STATE_FILE}.tmp`);
  await writeFile(tmp, JSON.stringify(replica.state), { mode: 0o600 });
  await rename(tmp, join(replica.dir, STATE_FILE));
}

async function readState(dir: string): Promise<ReplicaState | undefined> {
  try {
    return JSON.parse(await readFile(join(dir, STATE_FILE), "utf8")) as ReplicaState;
  } catch {
    return undefined;
  }
}

/** Pids of the processes whose environment carries this replica's mark. */
export async function replicaProcesses(dir: string, procDir = "/proc"): Promise<number[]> {
  const mark = Buffer.from(`${REPLICA_ENV}=${dir}\0`);
  const pids: number[] = [];
  for (const name of await readdir(procDir).catch(() => [] as string[])) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    const environ = await readFile(join(procDir, name, "environ")).catch(() => undefined);
    if (!environ || !Buffer.concat([environ, Buffer.from("\0")]).includes(mark)) continue;
    // A zombie holds nothing (its parent reaps it); only live processes count.
    const stat = await readFile(join(procDir, name, "stat"), "utf8").catch(() => "");
    const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
    if (state !== "Z" && state !== "X" && state !== "") pids.push(Number(name));
  }
  return pids;
}

export interface TeardownDeps {
  runner: CommandRunner;
  /** /proc/self/mounts, or a test's copy. */
  mountsFile?: string;
  procDir?: string;
  /** `pct` / `qm` (the fake toolbox's in tests). */
  pct?: string;
  qm?: string;
}

export interface TeardownReport {
  dir: string;
  killed: number[];
  unmounted: string[];
  destroyedVmid?: number | undefined;
  /** A vmid the replica recorded that is now another guest (no replica marker): not touched. */
  notOursVmid?: number | undefined;
  removed: boolean;
  /** The sweep's: why this replica could not be torn down whole (the others are torn down still). */
  error?: string | undefined;
}

/**
 * Tears a replica down: kills its processes (SIGKILL: a replica holds nothing worth a clean
 * shutdown), unmounts what is mounted below it, destroys its scratch guest, removes the directory.
 * Idempotent; each step runs even when an earlier one failed, and the first failure is thrown at the end.
 */
export async function teardownReplica(dir: string, deps: TeardownDeps): Promise<TeardownReport> {
  const report: TeardownReport = { dir, killed: [], unmounted: [], removed: false };
  const failures: unknown[] = [];
  const step = async (fn: () => Promise<void>) => {
    try {
      await fn();
    } catch (err) {
      failures.push(err);
    }
  };
  await step(async () => {
    for (let round = 0; round < 50; round++) {
      const pids = await replicaProcesses(dir, deps.procDir);
      if (pids.length === 0) return;
      for (const pid of pids) {
        try {
          process.kill(pid, "SIGKILL");
          if (!report.killed.includes(pid)) report.killed.push(pid);
        } catch {
          // already gone
        }
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`processes of replica ${dir} survived SIGKILL`);
  });
  const state = await readState(dir);
  await step(async () => {
    const mounts = mountsBelow(await readMountTable(deps.mountsFile ?? "/proc/self/mounts"), dir);
    for (const m of [...mounts].reverse()) {
      await unmount(deps.runner, m.target, { timeoutMs: 30_000 });
      report.unmounted.push(m.target);
    }
  });
  let guestKept = false;
  if (state?.vmid !== undefined) {
    const vmid = state.vmid;
    const type = state.vmType ?? "lxc";
    await step(async () => {
      // Only this replica's own guest: after a crash before `restore` created it, the vmid may be
      // someone else's by now (guestConfig is undefined for a guest that does not exist).
      const conf = await guestConfig(deps, type, vmid);
      if (!conf) return;
      if (!isReplicaGuest(conf, dir.split("/").at(-1) ?? "")) {
        // Not ours (no marker in its description): left alone.
        report.notOursVmid = vmid;
        return;
      }
      guestKept = true;
      if (await destroyCreatedGuest(deps, type, vmid)) report.destroyedVmid = vmid;
      guestKept = false;
    });
  }
  // A guest that could not be destroyed keeps the directory (and its state file) for the next sweep.
  if (!guestKept) {
    await step(async () => {
      report.removed = await removeTree(dir);
    });
  }
  if (failures.length > 0) throw failures[0];
  return report;
}

/**
 * Every replica left by an earlier run of this agent (found by the prefix), torn down. Never
 * throws: a replica that cannot be torn down whole is reported with its error, and the others are
 * torn down still (an agent must start even when one scratch copy resists).
 */
export async function sweepReplicas(scratchDir: string, prefix: string, deps: TeardownDeps): Promise<TeardownReport[]> {
  const names = await readdir(scratchDir).catch(() => [] as string[]);
  const reports: TeardownReport[] = [];
  for (const name of names.filter((n) => n.startsWith(replicaPrefix(prefix)))) {
    const dir = join(scratchDir, name);
    try {
      reports.push(await teardownReplica(dir, deps));
    } catch (err) {
      reports.push({ dir, killed: [], unmounted: [], removed: false, error: err instanceof Error ? err.message : String(err) });
    }
  }
  return reports;
}
