// One lull-agent per data directory. The agent takes this lock before anything else at start
// (before migrations, recovery and the start-up sweeps, before it binds its socket), holds it for
// its whole life and releases it last at stop.
//
// The lock is an SQLite database `<dataDir>/agent.lock` opened in EXCLUSIVE locking mode with an
// EXCLUSIVE transaction: SQLite holds a POSIX record lock (fcntl) on the file for as long as the
// connection is open, and the kernel drops it when the process ends, however it ends. So a lock
// left by a `kill -9`'d agent never blocks the next start, and pid reuse cannot fool it: the lock
// file names nobody, the kernel knows the holder. (Node has no flock(2); SQLite is already here.)
//
// Who holds it is written next to it, in `agent.lock.owner` (pid, the process's start time in
// ticks since boot, when it took the lock), only so a refused agent can name the holder: that file
// is information, never the lock. A refused agent opens the lock file, fails to lock it, closes it,
// and has touched nothing else.
import { renameSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import Database, { type Database as Db } from "better-sqlite3";
import { LullError } from "@lull/shared";
import { currentProcessIdentity, isSameProcessRunning, type ProcessIdentity } from "./process-identity.js";

export const LOCK_FILE = "agent.lock";
export const LOCK_OWNER_FILE = "agent.lock.owner";

export interface LockOwner extends ProcessIdentity {
  /** When the holder took the lock (ms since the epoch). */
  lockedAt: number;
}

export interface DataDirLock {
  readonly path: string;
  readonly owner: LockOwner;
  /** Releases the lock (idempotent). */
  release(): void;
}

function isBusy(err: unknown): boolean {
  const code = (err as { code?: unknown }).code;
  return code === "SQLITE_BUSY" || code === "SQLITE_LOCKED";
}

/** The owner file's content, when it is readable and well-formed. */
export function readLockOwner(dataDir: string): LockOwner | undefined {
  try {
    const raw = JSON.parse(readFileSync(join(dataDir, LOCK_OWNER_FILE), "utf8")) as Partial<LockOwner>;
    if (typeof raw.pid !== "number" || !Number.isInteger(raw.pid) || raw.pid <= 0) return undefined;
    return {
      pid: raw.pid,
      startTicks: typeof raw.startTicks === "string" ? raw.startTicks : undefined,
      lockedAt: typeof raw.lockedAt === "number" ? raw.lockedAt : 0,
    };
  } catch {
    return undefined;
  }
}

/** The refusal: names the directory and, when the owner file still describes a live process, its pid. */
function lockedError(dataDir: string, cause: unknown): LullError {
  const owner = readLockOwner(dataDir);
  const since = owner?.lockedAt ? `, holding it since ${new Date(owner.lockedAt).toISOString()}` : "";
  // The owner file may lag the lock by a moment, or name a process of another pid namespace.
  const holder = !owner
    ? `pid unknown: no readable ${LOCK_OWNER_FILE}`
    : isSameProcessRunning(owner)
      ? `pid ${owner.pid}${since}`
      : `pid ${owner.pid} according to ${LOCK_OWNER_FILE}, which names no process running here`;
  return new LullError(
    "LULL_E_DATA_DIR_LOCKED",
    `data dir ${dataDir} is in use by another lull-agent (${holder}); refusing to start — stop that agent first, or give this one its own dataDir`,
    { cause, terminal: true },
  );
}

function writeOwner(dataDir: string, owner: LockOwner): void {
  const tmp = join(dataDir, `${LOCK_OWNER_FILE}.${owner.pid}.tmp`);
  writeFileSync(tmp, `${JSON.stringify(owner)}\n`, { mode: 0o600 });
  renameSync(tmp, join(dataDir, LOCK_OWNER_FILE));
}

/** Opens the lock database and takes its exclusive lock; closes it again and rethrows when it cannot. */
function lockDatabase(path: string): Db {
  const db = new Database(path);
  try {
    db.pragma("busy_timeout = 0");
    db.pragma("locking_mode = EXCLUSIVE");
    // No journal file beside the lock; the database holds nothing worth a rollback.
    db.pragma("journal_mode = MEMORY");
    // In EXCLUSIVE locking mode the lock taken here is kept after COMMIT, until close().
    db.exec("BEGIN EXCLUSIVE");
    db.exec("COMMIT");
    return db;
  } catch (err) {
    db.close();
    throw err;
  }
}

/**
 * Takes the data directory's lock for this process. Throws LULL_E_DATA_DIR_LOCKED (naming the
 * directory and the holder's pid) when another agent holds it. `dataDir` must exist.
 */
export function acquireDataDirLock(dataDir: string, now: () => number = Date.now): DataDirLock {
  const path = join(dataDir, LOCK_FILE);
  let db: Db;
  try {
    db = lockDatabase(path);
  } catch (err) {
    if (isBusy(err)) throw lockedError(dataDir, err);
    throw new LullError("LULL_E_INTERNAL", `cannot open the data dir lock ${path}: ${(err as Error).message}`, { cause: err });
  }
  const owner: LockOwner = { ...currentProcessIdentity(), lockedAt: now() };
  try {
    writeOwner(dataDir, owner);
  } catch (err) {
    db.close();
    throw new LullError("LULL_E_INTERNAL", `cannot write ${join(dataDir, LOCK_OWNER_FILE)}: ${(err as Error).message}`, { cause: err });
  }
  let held = true;
  return {
    path,
    owner,
    release() {
      if (!held) return;
      held = false;
      // The owner file first, while the lock still keeps anyone else from writing theirs.
      const current = readLockOwner(dataDir);
      if (current?.pid === owner.pid && current.lockedAt === owner.lockedAt) rmSync(join(dataDir, LOCK_OWNER_FILE), { force: true });
      db.close();
    },
  };
}
