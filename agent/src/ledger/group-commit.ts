// Group commit: changes that arrive together share one transaction, and so one fsync. The
// database syncs every commit to disk (synchronous = FULL: an event is durable before any watcher
// sees it), which costs a few milliseconds on a real disk and blocks the event loop meanwhile. A
// busy node gets its controllers' calls in bursts — every stack of a guest acknowledges the same
// quiesce, 2,000 controllers renew their leases every few seconds — and one fsync per call would
// hold every stream's delivery behind them. `run(fn)` queues a change; all changes queued before
// the event loop's next check phase (every call grpc-js read in this poll) commit as one unit,
// each in its own savepoint: one that throws is rolled back alone and rejects its own caller, the
// others commit. Nothing is published, and no caller resolves, before the unit has committed.
import { LullError } from "@lull/shared";
import type { Ledger } from "./ledger.js";

interface Queued {
  fn: () => unknown;
  resolve: (value: unknown) => void;
  reject: (err: unknown) => void;
}

export class GroupCommit {
  private queue: Queued[] = [];
  private scheduled = false;
  /** Units committed and changes in them (diagnostics, tests). */
  readonly stats = { units: 0, changes: 0 };

  /**
   * `durable: false` is for changes that write no event and that the next start makes moot anyway:
   * lease renewals. Their units commit without waiting for the disk (synchronous = NORMAL for that
   * commit; WAL mode keeps the database consistent, and a power loss may lose only the last
   * renewals, which a restarted agent does not need: its controllers register again within a third
   * of their TTL). Every other commit still syncs. A unit that appends events is refused.
   */
  constructor(
    private readonly ledger: Ledger,
    private readonly options: { durable: boolean } = { durable: true },
  ) {}

  /** Runs `fn` (synchronous, a ledger change) in the next shared unit; resolves once that unit has committed. */
  run<T>(fn: () => T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ fn, resolve: resolve as (value: unknown) => void, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  /**
   * Commits what is queued now, at once. A call that is not batched runs this first, so calls keep
   * the order they arrived in: a registration that came before a StartBackup is in that job's barrier.
   */
  flushNow(): void {
    if (this.queue.length > 0) this.flush();
  }

  private flush(): void {
    this.scheduled = false;
    const batch = this.queue;
    this.queue = [];
    if (batch.length === 0) return;
    const outcomes: Array<{ ok: true; value: unknown } | { ok: false; err: unknown }> = [];
    const db = this.ledger.database.connection;
    const relaxed = !this.options.durable && !db.inTransaction;
    const synchronous = relaxed ? (db.pragma("synchronous", { simple: true }) as number) : 0;
    try {
      if (relaxed) db.pragma("synchronous = NORMAL");
      const seqBefore = relaxed ? this.ledger.events.lastSeq() : 0;
      this.ledger.commit(() => {
        for (const item of batch) {
          try {
            // A nested commit is a savepoint: a change that throws leaves the others intact.
            outcomes.push({ ok: true, value: this.ledger.commit(item.fn) });
          } catch (err) {
            outcomes.push({ ok: false, err });
          }
        }
        if (relaxed && this.ledger.events.lastSeq() !== seqBefore) {
          throw new LullError("LULL_E_INTERNAL", "a change that writes events was queued for a commit that does not wait for the disk");
        }
      });
    } catch (err) {
      for (const item of batch) item.reject(err);
      return;
    } finally {
      if (relaxed) db.pragma(`synchronous = ${synchronous}`);
    }
    this.stats.units += 1;
    this.stats.changes += batch.length;
    batch.forEach((item, i) => {
      const o = outcomes[i]!;
      if (o.ok) item.resolve(o.value);
      else item.reject(o.err);
    });
  }
}
