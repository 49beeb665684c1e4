// The one place that changes a record of any kind — a backup job, a group run, and next a
// verify, restore or prune job. Every change goes the same way:
//
//   load the record → pure transition(record, event, now) → save the row, the kind's durable
//   effects and the events in ONE transaction → publish the committed events → log each phase change
//
// Nothing awaits between the load and the save. Several changes may share one transaction
// (`commit`): a group run is created together with its member jobs, all or nothing; the events of
// the whole unit are published, and its phase changes logged, only once the outermost transaction
// has committed — a rolled-back change is never seen by a watcher.
import type { Event, Phase } from "@lull/proto";
import { LullError, type Clock, type Logger, phaseName } from "@lull/shared";
import type { EventBus } from "../events/bus.js";
import type { AgentDatabase } from "./agent-database.js";
import type { EventDraft, EventLog } from "./event-log.js";

/** What a transition asks for: events to persist, a phase change to log, or a durable effect of its kind (`X`). */
export type Effect<X = never> = { type: "emit"; event: EventDraft } | { type: "phase-changed"; from: Phase; to: Phase } | X;

/** One kind of record the ledger changes: its table, its pure machine, and how it is named. */
export interface RecordKind<R extends { id: string }, E, X = never> {
  /** The record's noun in the log line `<noun> phase changed`: `job`, `group`. */
  noun: string;
  transition(record: R, event: E, now: number): { record: R; effects: readonly Effect<X>[] };
  load(id: string): R | undefined;
  /** Inserts a new record (throws when it may not exist: a busy guest, a conflicting key). */
  insert(record: R): void;
  /**
   * Writes a changed record, fenced by the epoch. `previous` is the record as loaded in this
   * transaction: parts of it that the machine kept (the same objects) are already stored, so a
   * kind may leave them unwritten.
   */
  save(record: R, previous: R): void;
  /** The error for an id that names no record. */
  notFound(id: string): Error;
  /** Log fields naming a record. */
  logFields(record: R): Record<string, unknown>;
  /** Writes a durable effect of the kind (e.g. a backup's restore point) inside the transaction. */
  write?(record: R, effect: X, now: number): void;
}

/** A source of an event: the event, or a function of the record as it is inside the transaction. */
export type EventSource<R, E> = E | ((record: R, now: number) => E);

export interface LedgerDeps {
  database: AgentDatabase;
  events: EventLog;
  bus: EventBus;
  log: Logger;
  clock: Clock;
}

interface Unit {
  events: Event[];
  logs: Array<() => void>;
  /** Per kind, the records this unit has saved, by id. */
  saved: Map<object, Map<string, unknown>>;
}

/** The transaction, event and log machinery every kind's ledger shares. */
export class Ledger {
  readonly database: AgentDatabase;
  readonly events: EventLog;
  private readonly bus: EventBus;
  private readonly log: Logger;
  private readonly clock: Clock;
  private unit: Unit | undefined;

  constructor(deps: LedgerDeps) {
    this.database = deps.database;
    this.events = deps.events;
    this.bus = deps.bus;
    this.log = deps.log;
    this.clock = deps.clock;
  }

  now(): number {
    return this.clock.now();
  }

  /**
   * Runs `fn` in one transaction (joining the caller's unit when there is one). Events appended and
   * changes logged through the unit are published and logged after the outermost commit; those of a
   * nested call that threw are dropped with its savepoint.
   */
  commit<T>(fn: () => T): T {
    const outer = this.unit;
    if (outer) {
      const marks = { events: outer.events.length, logs: outer.logs.length };
      try {
        return this.database.transaction(fn);
      } catch (err) {
        outer.events.length = marks.events;
        outer.logs.length = marks.logs;
        // What the savepoint undid may be among them: later changes read the database again.
        outer.saved.clear();
        throw err;
      }
    }
    const unit: Unit = { events: [], logs: [], saved: new Map() };
    this.unit = unit;
    let result: T;
    try {
      result = this.database.transaction(fn);
    } finally {
      this.unit = undefined;
    }
    for (const line of unit.logs) line();
    this.bus.publish(unit.events);
    return result;
  }

  /** Appends events in the current unit (inside `commit`); they are published when it commits. */
  append(drafts: readonly EventDraft[], now: number): Event[] {
    const committed = this.events.append(drafts, now);
    this.current().events.push(...committed);
    return committed;
  }

  /**
   * The records of `kind` saved so far in the current unit (inside `commit`), by id. A change that
   * follows another to the same record in one unit (a guest's stacks acknowledging one quiesce in
   * one shared commit) starts from the record as saved rather than reading and decoding it again;
   * only the kind's ledger saves its records, so the saved one is what the database holds.
   */
  savedIn<R>(kind: object): Map<string, R> {
    const saved = this.current().saved;
    let map = saved.get(kind);
    if (!map) saved.set(kind, (map = new Map()));
    return map as Map<string, R>;
  }

  /** Logs a phase change once the current unit (inside `commit`) has committed. */
  logChange(noun: string, fields: Record<string, unknown>, from: Phase | null, to: Phase): void {
    this.current().logs.push(() => this.log.info({ ...fields, from: from === null ? null : phaseName(from), to: phaseName(to) }, `${noun} phase changed`));
  }

  private current(): Unit {
    if (!this.unit) throw new LullError("LULL_E_INTERNAL", "a ledger change was made outside commit(): it would never be published");
    return this.unit;
  }
}

/** The ledger of one record kind: creates records and applies events to them through its pure machine. */
export class KindLedger<R extends { id: string; phase: Phase }, E, X = never> {
  constructor(
    readonly ledger: Ledger,
    private readonly kind: RecordKind<R, E, X>,
  ) {}

  /** Inserts a new record with the events announcing it, in the current unit (or a new one). */
  insert(record: R, drafts: readonly EventDraft[]): Event[] {
    return this.ledger.commit(() => {
      this.kind.insert(record);
      this.ledger.logChange(this.kind.noun, this.kind.logFields(record), null, record.phase);
      return this.ledger.append(drafts, this.ledger.now());
    });
  }

  /**
   * Applies one event (or several, in order) and commits the result with the events and effects it
   * produced, in one transaction; returns the record as committed. An event that changes nothing
   * writes nothing.
   */
  apply(id: string, source: EventSource<R, E> | readonly EventSource<R, E>[]): R {
    const sources = (Array.isArray(source) ? source : [source]) as readonly EventSource<R, E>[];
    const now = this.ledger.now();
    return this.ledger.commit(() => {
      const saved = this.ledger.savedIn<R>(this);
      const current = saved.get(id) ?? this.kind.load(id);
      if (!current) throw this.kind.notFound(id);
      let next = current;
      const drafts: EventDraft[] = [];
      const changes: Array<{ from: Phase; to: Phase }> = [];
      const writes: X[] = [];
      for (const s of sources) {
        const event = typeof s === "function" ? (s as (record: R, now: number) => E)(next, now) : s;
        const step = this.kind.transition(next, event, now);
        next = step.record;
        for (const effect of step.effects) {
          const e = effect as Effect<never>;
          if (e.type === "emit") drafts.push(e.event);
          else if (e.type === "phase-changed") changes.push({ from: e.from, to: e.to });
          else writes.push(effect as X);
        }
      }
      if (drafts.length === 0 && writes.length === 0 && next === current) return current;
      this.kind.save(next, current);
      saved.set(id, next);
      for (const w of writes) this.kind.write?.(next, w, now);
      this.ledger.append(drafts, now);
      for (const c of changes) this.ledger.logChange(this.kind.noun, this.kind.logFields(next), c.from, c.to);
      return next;
    });
  }
}
