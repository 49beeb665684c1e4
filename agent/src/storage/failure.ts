// Turns whatever a storage or archive step threw into a LullError with a stable code:
// cancelled when the job's signal aborted, LULL_E_NO_SPACE when a file system ran full,
// otherwise the step's own code (LULL_E_SNAPSHOT_FAILED, LULL_E_ARCHIVE_FAILED...).
import { LullError, type ErrorCode } from "@lull/shared";

/** Codes that only say "something failed": a step replaces them with its own code. */
const GENERIC: ReadonlySet<ErrorCode> = new Set<ErrorCode>(["LULL_E_COMMAND_FAILED", "LULL_E_INTERNAL"]);

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** ENOSPC from Node, or "No space left on device" from a command's stderr (cp, btrfs, zstd), anywhere in the cause chain. */
export function isNoSpace(err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e !== undefined && e !== null && depth < 8; depth++) {
    const code = (e as { code?: unknown }).code;
    if (code === "ENOSPC" || code === "EDQUOT") return true;
    if (/No space left on device|Disk quota exceeded/i.test(messageOf(e))) return true;
    e = (e as { cause?: unknown }).cause;
  }
  return false;
}

export function classifyFailure(err: unknown, fallback: ErrorCode, context: string, signal?: AbortSignal): LullError {
  if (signal?.aborted === true || (err instanceof LullError && err.code === "LULL_E_CANCELLED")) {
    return err instanceof LullError && err.code === "LULL_E_CANCELLED"
      ? err
      : new LullError("LULL_E_CANCELLED", `${context}: cancelled`, { cause: err });
  }
  // A specific code (SNAPSHOT_FAILED, NO_SPACE, a hook's own) already says what went wrong.
  if (err instanceof LullError && !GENERIC.has(err.code)) return err;
  if (isNoSpace(err)) return new LullError("LULL_E_NO_SPACE", `${context}: no space left: ${messageOf(err)}`, { cause: err });
  return new LullError(fallback, `${context}: ${messageOf(err)}`, { cause: err });
}

/** Throws LULL_E_CANCELLED when the signal has aborted (between steps of a long operation). */
export function throwIfCancelled(signal: AbortSignal | undefined, context: string): void {
  if (signal?.aborted) throw new LullError("LULL_E_CANCELLED", `${context}: cancelled`, { cause: signal.reason });
}
