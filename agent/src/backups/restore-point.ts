// A restore point: the durable record of one backup that exists, independent of job history. It
// is written in the transaction that ends its job `done` and outlives the job's row, which
// retention deletes; what the point is kept or removed by is its own concern (retention of
// backups, verification), never the job's.
import type { Consistency, SnapshotMode, StackState } from "@lull/proto";

/** Where the backup's data is: a native tar.zst archive, a vzdump archive file, or a PBS snapshot. */
export type LocationKind = "native-archive" | "vzdump-archive" | "pbs-snapshot";

export interface RestorePoint {
  /** `b-` + the id of the job that made it. */
  id: string;
  jobId: string;
  guestId: string;
  groupRunId: string;
  engine: string;
  mode: SnapshotMode;
  consistency: Consistency;
  /** When the point-in-time copy was taken (undefined for vzdump suspend/stop mode and `snapshot: none`). */
  snapshotAt: Date | undefined;
  /** When the job ended `done`. */
  createdAt: Date;
  locationKind: LocationKind;
  /** The archive's path, or the PBS snapshot id (`ct/101/2026-12-02T10:00:00Z`). */
  location: string;
  sizeBytes: number;
  /** Each stack of the backup and the state it ended in. */
  stacks: Array<{ stack: string; state: StackState }>;
  protected: boolean;
  notes: string;
  /** `lull` for a point a Lull job made; `foreign` for a vzdump archive found in storage. */
  origin: PointOrigin;
  /** SHA-256 (hex) of the archive file as written; empty when the engine does not give one (vzdump, PBS). */
  sha256: string;
  /** Regular files in the archive and their bytes, counted while writing; undefined when unknown. */
  manifest: { fileCount: number; totalBytes: number } | undefined;
  /** The integrity check made when the point was recorded (or later), undefined until one ran. */
  integrity: IntegrityResult | undefined;
}

export type PointOrigin = "lull" | "foreign";

/** The outcome of checking an archive's bytes (not its application data). */
export interface IntegrityResult {
  state: "ok" | "failed" | "unchecked";
  /** What was checked (e.g. `sha256, zstd checksums, tar listing == manifest`) or why it failed. */
  detail: string;
  at: Date;
}

/** The point id of a job's backup. */
export const pointIdOf = (jobId: string): string => `b-${jobId.replace(/^j-/, "")}`;

/** A PBS snapshot id: `<ct|vm|host>/<id>/<ISO 8601 time>`. */
const PBS_SNAPSHOT = /^(ct|vm|host)\/[^/]+\/\d{4}-\d{2}-\d{2}T[\d:]+Z$/;

/** What kind of location an engine's result names. */
export function locationKindOf(engine: string, location: string): LocationKind {
  if (engine === "native") return "native-archive";
  return PBS_SNAPSHOT.test(location) ? "pbs-snapshot" : "vzdump-archive";
}
