// The write-isolation check (DESIGN.md, invariant 5) over restored services. For each service:
//   written-after-snapshot    a restored record whose timestamp is at or after the job's earliest
//                             snapshot time (`snapshotAt`): the backup holds a write it must not
//   acknowledged-but-missing  a record acknowledged (durable) before the cutoff — by default
//                             `snapshotAt`, which includes everything acknowledged before the
//                             quiesce began — is not in the backup
//   record-mismatch           a restored record's timestamp differs from the one acknowledged
//   damaged                   the service's data is damaged: a failed `PRAGMA integrity_check`, a
//                             database that does not open, a torn line, a partial object
//   service-missing           the service is not in the backup at all
//   no-snapshot-time          the job has no snapshot time to check against
// The check returns every violation (empty: isolation holds), never just a boolean.
import type { AckedRecord, StoredRecord } from "./ledger.js";

export type ViolationKind =
  | "written-after-snapshot"
  | "acknowledged-but-missing"
  | "record-mismatch"
  | "damaged"
  | "service-missing"
  | "no-snapshot-time";

export interface Violation {
  service: string;
  kind: ViolationKind;
  detail: string;
  recordId?: number;
}

/** What is known about one service: what the backup holds and what its writer acknowledged. */
export interface ServiceEvidence {
  service: string;
  /** Records restored from the backup; undefined when the service is not in the backup. */
  restored: readonly StoredRecord[] | undefined;
  /** Damage found while reading the restored data (see services.ts). */
  problems: readonly string[];
  /** The writer's ledger. */
  acked: readonly AckedRecord[];
}

export interface IsolationInput {
  /** The job's earliest snapshot time (`Job.snapshotAt`). */
  snapshotAt: Date | number | undefined;
  /** Records acknowledged before this must be restored; default `snapshotAt`. */
  ackCutoff?: Date | number;
  services: readonly ServiceEvidence[];
}

const ms = (t: Date | number) => (typeof t === "number" ? t : t.getTime());
const iso = (t: number) => new Date(t).toISOString();

function checkService(evidence: ServiceEvidence, snapshotAt: number, ackCutoff: number): Violation[] {
  const { service } = evidence;
  if (evidence.restored === undefined) return [{ service, kind: "service-missing", detail: "the backup does not hold this service" }];
  const violations: Violation[] = evidence.problems.map((p) => ({ service, kind: "damaged" as const, detail: p }));
  const restored = new Map(evidence.restored.map((r) => [r.id, r]));
  for (const record of evidence.restored) {
    if (record.at >= snapshotAt) {
      violations.push({
        service,
        kind: "written-after-snapshot",
        recordId: record.id,
        detail: `record #${record.id} written at ${iso(record.at)}, ${record.at - snapshotAt} ms after the snapshot time ${iso(snapshotAt)}`,
      });
    }
  }
  for (const ack of evidence.acked) {
    const found = restored.get(ack.id);
    if (found === undefined) {
      if (ack.ackedAt < ackCutoff) {
        violations.push({
          service,
          kind: "acknowledged-but-missing",
          recordId: ack.id,
          detail: `record #${ack.id} acknowledged at ${iso(ack.ackedAt)}, ${ackCutoff - ack.ackedAt} ms before ${iso(ackCutoff)}, is not in the backup`,
        });
      }
    } else if (found.at !== ack.at) {
      violations.push({
        service,
        kind: "record-mismatch",
        recordId: ack.id,
        detail: `record #${ack.id} restored with time ${iso(found.at)} but acknowledged with ${iso(ack.at)}`,
      });
    }
  }
  return violations;
}

/** Every violation of write isolation among `services` (empty when isolation holds). */
export function checkWriteIsolation(input: IsolationInput): Violation[] {
  if (input.snapshotAt === undefined) {
    return input.services.map((s) => ({ service: s.service, kind: "no-snapshot-time" as const, detail: "the job has no snapshot time" }));
  }
  const snapshotAt = ms(input.snapshotAt);
  const ackCutoff = input.ackCutoff !== undefined ? ms(input.ackCutoff) : snapshotAt;
  return input.services.flatMap((s) => checkService(s, snapshotAt, ackCutoff));
}

/** One line per service and kind: `journal: written-after-snapshot × 57 (first: record #812 written at …)`. */
export function summarizeViolations(violations: readonly Violation[]): string[] {
  const groups = new Map<string, Violation[]>();
  for (const v of violations) {
    const key = `${v.service}: ${v.kind}`;
    groups.set(key, [...(groups.get(key) ?? []), v]);
  }
  return [...groups].map(([key, vs]) => `${key} × ${vs.length} (first: ${vs[0]!.detail})`);
}
