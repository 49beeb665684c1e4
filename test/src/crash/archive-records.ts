// Write isolation of a finished backup, read straight from its archive: every demo-app record in a
// stack's volume was written before the job's snapshot (invariant 5), and the records are the
// app's, in order, without holes.
import { execa } from "execa";
import { SnapshotMode, type Job } from "@lull/proto";
import type { AppRecord } from "../demo/records.js";

/** The complete records of a records.jsonl text (a torn last line is ignored). */
function readRecordsText(text: string): AppRecord[] {
  const records: AppRecord[] = [];
  for (const line of text.split("\n")) {
    try {
      const r = JSON.parse(line) as AppRecord;
      if (Number.isInteger(r.id) && Number.isFinite(r.at)) records.push(r);
    } catch {
      // empty or torn line
    }
  }
  return records;
}

/** `tar --zstd -xOf <archive> <volume>/records.jsonl`: the volume's records as archived. */
async function archivedRecordsText(archive: string, volume: string): Promise<string> {
  const r = await execa("tar", ["--zstd", "-xOf", archive, `${volume}/records.jsonl`], {
    shell: false,
    reject: false,
    timeout: 60_000,
    maxBuffer: 64 * 1024 * 1024,
  });
  if (r.exitCode !== 0) throw new Error(`tar --zstd -xOf ${archive} ${volume}/records.jsonl exited ${r.exitCode ?? r.signal}: ${String(r.stderr).trim()}`);
  return String(r.stdout);
}

/** Problems with the records of `volumes` in a done job's archive; empty when isolated and whole. */
export async function isolationProblems(job: Job, volumes: readonly string[]): Promise<string[]> {
  const problems: string[] = [];
  const snapshotAt = job.snapshotAt?.getTime();
  for (const volume of volumes) {
    const records = readRecordsText(await archivedRecordsText(job.archivePath, volume));
    if (records.length === 0) {
      problems.push(`${job.id} ${volume}: no records in the archive`);
      continue;
    }
    const hole = records.findIndex((r, i) => i > 0 && r.id !== records[i - 1]!.id + 1);
    if (hole !== -1) problems.push(`${job.id} ${volume}: record #${records[hole]!.id} follows #${records[hole - 1]!.id}`);
    const pointInTime = job.mode === SnapshotMode.SNAPSHOT_MODE_SNAPSHOT || job.mode === SnapshotMode.SNAPSHOT_MODE_COPY;
    if (pointInTime && snapshotAt === undefined) problems.push(`${job.id}: done with a ${SnapshotMode[job.mode]} but no snapshot time`);
    const newest = records.at(-1)!;
    if (pointInTime && snapshotAt !== undefined && newest.at >= snapshotAt) {
      problems.push(`${job.id} ${volume}: record #${newest.id} written ${newest.at - snapshotAt} ms after the snapshot is in the backup`);
    }
  }
  return problems;
}
