// The agent's database as the stores share it: one connection, one transaction at a time (nested
// calls become savepoints), and this start's fencing epoch. Each open starts a new epoch; every
// store's writes carry it and succeed only on rows whose epoch is not newer, so a writer of an
// older agent start cannot overwrite what a newer one (or its recovery) decided.
import type { Database as Db } from "better-sqlite3";
import { openAgentDatabase } from "./database.js";

export interface AgentDatabaseOptions {
  /** How long a write waits for a lock held by another connection. Default 5000 ms. */
  busyTimeoutMs?: number;
  /** Clock for the epoch's start time. */
  now?: () => number;
}

export class AgentDatabase {
  private constructor(
    readonly connection: Db,
    readonly epoch: number,
  ) {}

  /** Opens (and migrates) the database and starts a new epoch. */
  static open(path: string, options: AgentDatabaseOptions = {}): AgentDatabase {
    const db = openAgentDatabase(path, options);
    try {
      const started = (options.now ?? Date.now)();
      const epoch = Number(db.prepare("INSERT INTO agent_epochs (started_at) VALUES (?)").run(started).lastInsertRowid);
      return new AgentDatabase(db, epoch);
    } catch (err) {
      db.close();
      throw err;
    }
  }

  /** Runs `fn` in one IMMEDIATE transaction (nested calls become savepoints). `fn` must not await. */
  transaction<T>(fn: () => T): T {
    if (this.connection.inTransaction) return this.connection.transaction(fn)();
    return this.connection.transaction(fn).immediate();
  }

  close(): void {
    if (this.connection.open) this.connection.close();
  }
}
