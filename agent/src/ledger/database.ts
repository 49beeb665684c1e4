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
