// Start-up recovery's look for an archive that a native run finished just before the agent died.
// The native engine writes `<archiveDir>/<prefix>partial-<jobId>.tar.zst`, fsyncs it, and only then
// renames it to its final name `<archiveDir>/<guestId>/<guestId>-<yyyymmddThhmmssZ>-<jobId>.tar.zst`
// (agent/src/archive/tar-zst.ts; isFinalArchiveName there recognises that name). So a file under the
// final name is complete: the agent died after the rename and before it marked the job done. A
// partial file is not, and the sweep removes it.
import { lstatSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { GUEST_ID } from "@lull/shared";
import { isFinalArchiveName } from "./archive/tar-zst.js";

export interface WrittenArchive {
  path: string;
  bytes: number;
}

/** The job's archive under its final name, when it exists as a regular file; undefined otherwise. */
export function findWrittenArchive(archiveDir: string, guestId: string, jobId: string): WrittenArchive | undefined {
  if (!GUEST_ID.test(guestId)) return undefined;
  const dir = join(archiveDir, guestId);
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return undefined; // no archive of this guest at all
  }
  for (const name of names.filter((n) => isFinalArchiveName(n, guestId, jobId)).sort()) {
    const path = join(dir, name);
    try {
      const st = lstatSync(path);
      if (st.isFile()) return { path, bytes: st.size };
    } catch {
      // gone meanwhile: not an archive to record
    }
  }
  return undefined;
}
