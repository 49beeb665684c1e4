// Opening the agent's SQLite database: one place for the connection's settings, so every store
// (jobs, tokens, vzdump shutdowns) sees the same durability and the same schema.
import Database, { type Database as Db } from "better-sqlite3";
import { migrate } from "./migrations.js";

/**
 * Opens the database at `path` in WAL mode with FULL sync (a committed change survives a power
 * loss too, not only a crash of the agent), foreign keys on, and migrated to the newest schema.
 */
export function openAgentDatabase(path: string, options: { busyTimeoutMs?: number | undefined } = {}): Db {
  const db = new Database(path);
  try {
    useIncrementalVacuum(db);
    db.pragma("journal_mode = WAL");
    db.pragma("synchronous = FULL");
    db.pragma("foreign_keys = ON");
    db.pragma(`busy_timeout = ${options.busyTimeoutMs ?? 5000}`);
    migrate(db);
    return db;
  } catch (err) {
    db.close();
    throw err;
  }
}

/**
 * Pages that retention frees go back to the file system, so the database shrinks after a prune
 * instead of keeping its largest size for good (`reclaimFreePages` after each retention pass). A new
 * database is created with `auto_vacuum = INCREMENTAL`; one made before (auto_vacuum NONE) is
 * converted once by a VACUUM, which rewrites the file. When another connection holds the database
 * (the `token` command beside a running agent) the conversion waits for a later open.
 */
function useIncrementalVacuum(db: Db): void {
  const INCREMENTAL = 2;
  if ((db.pragma("auto_vacuum", { simple: true }) as number) === INCREMENTAL) return;
  db.pragma("auto_vacuum = INCREMENTAL");
  const tables = db.prepare("SELECT COUNT(*) AS n FROM sqlite_master").get() as { n: number };
  if (tables.n === 0) return; // takes effect when the first table is created
  try {
    db.exec("VACUUM");
  } catch (err) {
    if ((err as { code?: string }).code !== "SQLITE_BUSY") throw err;
  }
}

/**
 * Returns the free pages to the file system and truncates the write-ahead log; the bytes the
 * database file shrank by. For after a retention pass deleted rows.
 */
export function reclaimFreePages(db: Db): number {
  const pageSize = db.pragma("page_size", { simple: true }) as number;
  const free = db.pragma("freelist_count", { simple: true }) as number;
  if (free > 0) db.pragma("incremental_vacuum");
  db.pragma("wal_checkpoint(TRUNCATE)");
  return free * pageSize;
}
