// A writer's records and its ledger of acknowledgements. A record is `{id, at}`: `at` is the
// writer's clock (ms since epoch) taken just before the write began. The ledger lives outside
// the backed-up data (`<runDir>/acks.jsonl`), one JSON line per record, appended only after the
// record is durable: `{"id":7,"at":…,"ackedAt":…}`.
import { closeSync, openSync, writeSync } from "node:fs";
import { join } from "node:path";
import { readJsonLines } from "../support/json-lines.js";

/** A record as stored by a service (and as restored from a backup). */
export interface StoredRecord {
  id: number;
  at: number;
}

/** A record the writer acknowledged: it was durable at `ackedAt`. */
export interface AckedRecord extends StoredRecord {
  ackedAt: number;
}

/** The three kinds of service the writer app writes. */
export const SERVICE_KINDS = ["sqlite", "log", "objects"] as const;
export type ServiceKind = (typeof SERVICE_KINDS)[number];

export function isServiceKind(value: string): value is ServiceKind {
  return (SERVICE_KINDS as readonly string[]).includes(value);
}

/** Files of one writer outside its data: ledger, pid file, output. */
export const runFiles = (runDir: string) => ({
  ledger: join(runDir, "acks.jsonl"),
  pid: join(runDir, "writer.pid"),
  log: join(runDir, "writer.log"),
});

/** Payload that makes each record a few hundred bytes, derived from the id (so it can be checked). */
export function payloadOf(id: number): string {
  return `record ${id} `.repeat(16);
}

/** Appends acknowledgements to a ledger (no fsync: the ledger is read after a clean exit). */
export class LedgerWriter {
  private readonly fd: number;

  constructor(path: string) {
    this.fd = openSync(path, "a");
  }

  ack(record: AckedRecord): void {
    writeSync(this.fd, `${JSON.stringify(record)}\n`);
  }

  close(): void {
    closeSync(this.fd);
  }
}

/** Every acknowledgement in a ledger, in order; a missing ledger is empty. */
export function readLedger(path: string): AckedRecord[] {
  const acked = readJsonLines(path, { torn: "throw" }) as AckedRecord[];
  for (const r of acked) {
    if (!Number.isInteger(r.id) || !Number.isFinite(r.at) || !Number.isFinite(r.ackedAt)) {
      throw new Error(`bad ledger line in ${path}: ${JSON.stringify(r)}`);
    }
  }
  return acked;
}
