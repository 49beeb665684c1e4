// The archive's byte total, measured before it starts: the sum of the sizes of the
// regular files under each read path (symlinks are not followed, the read path itself
// included). GNU find walks the trees and prints one size per file, which this process only
// sums: a walk of its own cost one asynchronous lstat per file, seconds for a large tree.
// Files that vanish while walking a live path are skipped.
import { execa } from "execa";
import { formatArgv, LullError, tailLines } from "@lull/shared";

const STDERR_LIMIT_BYTES = 256 * 1024;
/** find's complaint about an entry gone between listing its directory and reading it. */
const VANISHED = /: No such file or directory$/;

function findArgs(path: string): string[] {
  // `./` keeps a path that starts with `-` from being read as an expression.
  return ["-P", path.startsWith("/") ? path : `./${path}`, "-type", "f", "-printf", "%s\\n"];
}

async function sizeOf(path: string, signal: AbortSignal | undefined): Promise<number> {
  if (signal?.aborted) throw new LullError("LULL_E_CANCELLED", "measuring the archive: cancelled", { cause: signal.reason });
  const args = findArgs(path);
  const find = execa("find", args, {
    shell: false,
    reject: false,
    stdin: "ignore",
    buffer: { stdout: false },
    maxBuffer: { stderr: STDERR_LIMIT_BYTES },
    ...(signal ? { cancelSignal: signal } : {}),
  });
  let total = 0;
  let partial = "";
  find.stdout.setEncoding("latin1").on("data", (chunk: string) => {
    const lines = (partial + chunk).split("\n");
    partial = lines.pop() ?? "";
    for (const line of lines) total += Number(line);
  });
  const r = await find;
  if (signal?.aborted) throw new LullError("LULL_E_CANCELLED", "measuring the archive: cancelled", { cause: signal.reason });
  const complaints = String(r.stderr).split("\n").filter(Boolean);
  // A missing read path measures 0, as a vanished file does.
  if (r.exitCode === 0 || (r.exitCode === 1 && complaints.length > 0 && complaints.every((l) => VANISHED.test(l)))) return total;
  const how = r.exitCode !== undefined ? `exited with code ${r.exitCode}` : `failed: ${r.shortMessage}`;
  throw new LullError("LULL_E_ARCHIVE_FAILED", `measuring ${path}: ${formatArgv("find", args)} ${how}: ${tailLines(complaints.join("\n"))}`);
}

/** Sum of regular file sizes under every path, in bytes. */
export async function measureTrees(paths: readonly string[], signal?: AbortSignal): Promise<number> {
  let total = 0;
  for (const path of paths) total += await sizeOf(path, signal);
  return total;
}
