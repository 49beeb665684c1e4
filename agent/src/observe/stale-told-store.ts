// Which stale-verification episode of each (guest, stack) was told (`verification_stale_told`,
// migration 14), so that a restarted agent does not tell an ongoing episode again.
import type { Statement } from "better-sqlite3";
import type { AgentDatabase } from "../ledger/agent-database.js";

export class StaleToldStore {
  private readonly stmt: Record<string, Statement>;

  constructor(database: AgentDatabase) {
    const db = database.connection;
    this.stmt = {
      get: db.prepare("SELECT since FROM verification_stale_told WHERE guest_id = ? AND stack = ?"),
      set: db.prepare(
        `INSERT INTO verification_stale_told (guest_id, stack, since, told_at) VALUES (?, ?, ?, ?)
         ON CONFLICT (guest_id, stack) DO UPDATE SET since = excluded.since, told_at = excluded.told_at`,
      ),
      clear: db.prepare("DELETE FROM verification_stale_told WHERE guest_id = ? AND stack = ?"),
    };
  }

  /** The episode told for the stack (its `since`), undefined when none is. */
  toldEpisode(guestId: string, stack: string): number | undefined {
    return (this.stmt.get!.get(guestId, stack) as { since: number } | undefined)?.since;
  }

  told(guestId: string, stack: string, episode: number, at: number): void {
    this.stmt.set!.run(guestId, stack, episode, at);
  }

  /** The stack is fresh again: its next stale episode is told. */
  clear(guestId: string, stack: string): void {
    this.stmt.clear!.run(guestId, stack);
  }
}
