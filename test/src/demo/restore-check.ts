// Restores a backup of the demo app and checks write isolation against the live records:
// the restored records are exactly the ones written before the snapshot, and none after it.
import { mkdir } from "node:fs/promises";
import { execa } from "execa";
import type { AppRecord } from "./records.js";

export interface Check {
  name: string;
  ok: boolean;
  detail: string;
}

/** `tar --zstd -xf <archive> -C <dir>`; the volumes appear as `<dir>/<volume name>/`. */
export async function restoreArchive(archive: string, dir: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  const r = await execa("tar", ["--zstd", "-xf", archive, "-C", dir], { shell: false, reject: false, timeout: 120_000 });
  if (r.exitCode !== 0) throw new Error(`tar --zstd -xf ${archive} exited ${r.exitCode ?? r.signal}: ${String(r.stderr).trim()}`);
}

const iso = (ms: number) => new Date(ms).toISOString();

/**
 * Checks the restored records of volume `volume` against the live ones and the job's snapshot time.
 * `live` must be read after the app ran again after the backup.
 */
export function checkRestoredRecords(restored: readonly AppRecord[], live: readonly AppRecord[], snapshotAt: Date | undefined): Check[] {
  const checks: Check[] = [];
  checks.push({
    name: "the backup holds records",
    ok: restored.length > 0,
    detail: restored.length > 0 ? `${restored.length} records, #${restored[0]!.id} … #${restored.at(-1)!.id}` : "no records restored",
  });
  const newest = restored.at(-1);
  const snap = snapshotAt?.getTime();
  checks.push({
    name: "no record written after the snapshot is in the backup",
    ok: newest !== undefined && snap !== undefined && newest.at < snap,
    detail:
      newest && snap !== undefined
        ? `newest restored record #${newest.id} at ${iso(newest.at)}, snapshot at ${iso(snap)} (${snap - newest.at} ms later)`
        : "the job has no snapshot time",
  });
  const mismatch = restored.findIndex((r, i) => live[i]?.id !== r.id || live[i]?.at !== r.at);
  checks.push({
    name: "every record written before the stop is in the backup",
    ok: restored.length > 0 && mismatch === -1,
    detail:
      mismatch === -1
        ? `the backup is exactly the first ${restored.length} of ${live.length} live records`
        : `restored record ${mismatch} (#${restored[mismatch]?.id}) differs from the live one`,
  });
  const next = live[restored.length];
  checks.push({
    name: "the app wrote again after the snapshot",
    ok: next !== undefined && snap !== undefined && next.at > snap && next.id === (newest?.id ?? 0) + 1,
    detail: next ? `next live record #${next.id} at ${iso(next.at)}` : "no live record after the backup",
  });
  return checks;
}
