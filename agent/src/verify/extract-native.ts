// Extracting a native point into a replica's empty root through the one safe extractor
// (archive/safe-extract.ts): the archive's hash and manifest are checked against the catalog and
// every member is judged before anything is written. `env` (the replica's mark) is carried by
// every process it starts, so a teardown — or the sweep after a crash — finds and kills them.
import { safeExtract } from "../archive/safe-extract.js";
import type { RestorePoint } from "../backups/restore-point.js";

export type NativeExtractor = (point: RestorePoint, target: string, signal: AbortSignal, env: Readonly<Record<string, string>>) => Promise<void>;

export function safeNativeExtractor(): NativeExtractor {
  return async (point, target, signal, env) => {
    await safeExtract(point.location, target, { expect: { sha256: point.sha256 || undefined, manifest: point.manifest }, signal, env });
  };
}
