// A fake pmxcfs: a directory shared by several agent processes (one instance per "node") with the
// lock semantics of the real cluster file system. What it reproduces, from which real source,
// and what not: test/fakes/pmxcfs/README.md.
import { existsSync, readFileSync } from "node:fs";
import { mkdir, readdir, readFile, rename, rm, rmdir, stat, utimes, writeFile } from "node:fs/promises";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import type { ClusterFs } from "@lull/agent";

export const DEFAULT_LOCK_TIMEOUT_MS = 120_000;

export interface FakePmxcfsOptions {
  /** The shared directory (stands for /etc/pve of every node). */
  root: string;
  nodeName: string;
  /** Corosync node id; the lowest live one frees stale locks. */
  nodeId: number;
  /** CFS_LOCK_TIMEOUT, scaled (env LULL_FAKE_PMXCFS_LOCK_TIMEOUT_MS; default 120 s). */
  lockTimeoutMs?: number;
}

const fail = (code: string, message: string) => Object.assign(new Error(`${code}: ${message}`), { code });
const LOCK_DIR = "priv/lock/";

interface Seen {
  instance: string;
  mtime: number;
  firstSeen: number;
}

/** Sets a node's quorum in the shared directory (the simulation's partition switch). */
export async function setQuorum(root: string, nodeId: number, quorate: boolean): Promise<void> {
  await mkdir(join(root, ".fake", "quorum"), { recursive: true });
  await writeFile(join(root, ".fake", "quorum", String(nodeId)), quorate ? "1" : "0");
}

export async function initFakePmxcfs(root: string): Promise<void> {
  for (const d of ["priv/lock", "lull", ".fake/quorum", ".fake/members", ".fake/unlock-requests", ".fake/tmp"]) {
    await mkdir(join(root, d), { recursive: true });
  }
}

export class FakePmxcfs implements ClusterFs {
  readonly nodeName: string;
  readonly nodeId: number;
  readonly lockTimeoutMs: number;
  private readonly root: string;
  /** This node's view: when it first saw each lock in its current state (pmxcfs keeps this per node). */
  private readonly seen = new Map<string, Seen>();
  private timer: NodeJS.Timeout | undefined;

  constructor(o: FakePmxcfsOptions) {
    this.root = o.root;
    this.nodeName = o.nodeName;
    this.nodeId = o.nodeId;
    this.lockTimeoutMs = o.lockTimeoutMs ?? (Number(process.env.LULL_FAKE_PMXCFS_LOCK_TIMEOUT_MS) || DEFAULT_LOCK_TIMEOUT_MS);
  }

  /** This node's pmxcfs daemon: membership heartbeat, lock views, unlock requests. */
  startDaemon(everyMs = Math.max(5, this.lockTimeoutMs / 40)): void {
    const tick = () => void this.service().catch(() => undefined);
    tick();
    this.timer = setInterval(tick, everyMs);
    this.timer.unref();
  }

  stopDaemon(): void {
    if (this.timer) clearInterval(this.timer);
  }

  private p(path: string): string {
    return join(this.root, path);
  }

  private quorateSync(): boolean {
    const f = this.p(`.fake/quorum/${this.nodeId}`);
    return !existsSync(f) || readFileSync(f, "utf8").trim() !== "0";
  }

  async quorate(): Promise<boolean> {
    return this.quorateSync();
  }

  private writable(path: string): void {
    // pmxcfs without quorum: the whole mount is read-only (cfs_fuse_* return -EACCES).
    if (!this.quorateSync()) throw fail("EACCES", `permission denied, ${path} (no quorum)`);
  }

  private isLock(path: string): boolean {
    return path.startsWith(LOCK_DIR) && path.length > LOCK_DIR.length && !path.slice(LOCK_DIR.length).includes("/");
  }

  async mkdir(path: string): Promise<void> {
    this.writable(path);
    if (!this.isLock(path)) {
      await mkdir(this.p(path)).catch((err) => {
        throw fail(err.code, `mkdir ${path}`);
      });
      return;
    }
    // A lock is a directory with its writer node inside, made in one rename: a rename onto an
    // existing (never empty) lock fails, so exactly one contender wins, as corosync's ordering does.
    const tmp = this.p(`.fake/tmp/${randomBytes(8).toString("hex")}`);
    await mkdir(tmp);
    await writeFile(join(tmp, ".writer"), JSON.stringify({ node: this.nodeName, nodeId: this.nodeId, instance: randomBytes(8).toString("hex") }));
    try {
      await rename(tmp, this.p(path));
    } catch (err) {
      await rm(tmp, { recursive: true, force: true });
      const code = (err as NodeJS.ErrnoException).code;
      if (code === "ENOTEMPTY" || code === "EEXIST") throw fail("EEXIST", `file already exists, mkdir '${path}'`);
      throw err;
    }
  }

  private async writer(path: string): Promise<{ node: string; nodeId: number; instance: string } | undefined> {
    try {
      return JSON.parse(await readFile(join(this.p(path), ".writer"), "utf8"));
    } catch {
      return undefined;
    }
  }

  async utime(path: string, mtimeSeconds: number): Promise<void> {
    this.writable(path);
    if (!this.isLock(path)) {
      await utimes(this.p(path), mtimeSeconds, mtimeSeconds);
      return;
    }
    const w = await this.writer(path);
    if (!w) throw fail("ENOENT", `no such file or directory, utime '${path}'`);
    if (mtimeSeconds === 0) {
      // An unlock request (memdb: utime 0 on a lock dir), delivered to every node; the lowest
      // node id acts on it.
      await writeFile(this.p(`.fake/unlock-requests/${path.slice(LOCK_DIR.length)}`), w.instance);
      await this.service();
      return;
    }
    // Renewal (memdb_mtime on a lock dir): only from the node that created the lock (the
    // te->writer check) and never backwards in time; both refused with EACCES.
    if (w.nodeId !== this.nodeId) throw fail("EACCES", `permission denied, utime '${path}' (lock belongs to node ${w.node})`);
    const st = await stat(this.p(path));
    if (mtimeSeconds * 1000 < st.mtimeMs) throw fail("EACCES", `permission denied, utime '${path}' (dir is locked: mtime would go backwards)`);
    await utimes(this.p(path), mtimeSeconds, mtimeSeconds);
  }

  async rmdir(path: string): Promise<void> {
    this.writable(path);
    if (!this.isLock(path)) {
      await rmdir(this.p(path));
      return;
    }
    await this.removeLock(path.slice(LOCK_DIR.length));
  }

  async writeFile(path: string, text: string): Promise<void> {
    this.writable(path);
    const tmp = this.p(`.fake/tmp/${randomBytes(8).toString("hex")}`);
    await writeFile(tmp, text);
    await rename(tmp, this.p(path));
  }

  private async removeLock(name: string, instance?: string): Promise<boolean> {
    // Atomic: move it away first (a contender's rename then finds the name free), then delete.
    const from = this.p(LOCK_DIR + name);
    if (instance !== undefined) {
      const w = await this.writer(LOCK_DIR + name);
      if (!w || w.instance !== instance) return false;
    }
    const trash = this.p(`.fake/tmp/gone-${randomBytes(8).toString("hex")}`);
    try {
      await rename(from, trash);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") throw fail("ENOENT", `no such file or directory, rmdir '${LOCK_DIR + name}'`);
      throw err;
    }
    await rm(trash, { recursive: true, force: true });
    return true;
  }

  /** One pass of this node's pmxcfs: heartbeat, refresh the lock views, act on unlock requests if lowest. */
  async service(): Promise<void> {
    const now = Date.now();
    await writeFile(this.p(`.fake/members/${this.nodeId}`), String(now)).catch(() => undefined);
    // This node's view of each lock: age counts from when this node first saw it in this state.
    const names = await readdir(this.p("priv/lock")).catch(() => [] as string[]);
    const present = new Set<string>();
    for (const name of names) {
      const w = await this.writer(LOCK_DIR + name);
      const st = await stat(this.p(LOCK_DIR + name)).catch(() => undefined);
      if (!w || !st) continue;
      present.add(name);
      const s = this.seen.get(name);
      if (!s || s.instance !== w.instance || s.mtime !== st.mtimeMs) this.seen.set(name, { instance: w.instance, mtime: st.mtimeMs, firstSeen: now });
    }
    for (const name of this.seen.keys()) if (!present.has(name)) this.seen.delete(name);
    if (!this.quorateSync() || !(await this.lowestLiveNode())) return;
    const requests = await readdir(this.p(".fake/unlock-requests")).catch(() => [] as string[]);
    for (const name of requests) {
      const file = this.p(`.fake/unlock-requests/${name}`);
      const instance = await readFile(file, "utf8").catch(() => undefined);
      await rm(file, { force: true });
      const s = this.seen.get(name);
      if (instance === undefined || !s || s.instance !== instance) continue;
      // memdb_lock_expired: older than CFS_LOCK_TIMEOUT in this node's view.
      if (now - s.firstSeen > this.lockTimeoutMs) await this.removeLock(name, instance).catch(() => false);
    }
  }

  private async lowestLiveNode(): Promise<boolean> {
    const now = Date.now();
    const live = Math.max(50, this.lockTimeoutMs / 10);
    for (const id of await readdir(this.p(".fake/members")).catch(() => [] as string[])) {
      const n = Number(id);
      if (n >= this.nodeId) continue;
      const q = this.p(`.fake/quorum/${n}`);
      if (existsSync(q) && readFileSync(q, "utf8").trim() === "0") continue;
      const beat = Number(await readFile(this.p(`.fake/members/${id}`), "utf8").catch(() => "0"));
      if (now - beat < live) return false;
    }
    return true;
  }
}
