// Extracting a native archive into a replica's empty root. Replaced by the catalog's one safe
// extractor (traversal, absolute paths and device nodes refused; hash and manifest checked) once it
// exists in this tree; until then GNU tar with its own protections: members are extracted below the
// target only (tar strips leading `/` and refuses `..` members by default).
import type { CommandRunner } from "@lull/shared";

export function tarExtractor(runner: CommandRunner) {
  return async (archive: string, target: string, signal: AbortSignal, env: Readonly<Record<string, string>>): Promise<void> => {
    await runner.run("tar", ["--zstd", "-x", "-f", archive, "-C", target, "--no-overwrite-dir"], { signal, timeoutMs: 24 * 3600_000, env });
  };
}
