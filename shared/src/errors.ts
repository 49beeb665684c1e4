// Stable error codes of Lull, their gRPC status, and the one place that turns
// an error into a gRPC status (server side) and back into a LullError (client side).
// Every code is documented in shared/ERRORS.md; a test checks that.
import { Metadata, status, type ServiceError } from "@grpc/grpc-js";

export const ERROR_CODE_KEY = "lull-error-code";

/** code → gRPC status. Adding a code means documenting it in shared/ERRORS.md. */
export const ERROR_CODES = {
  LULL_E_INVALID_ARGUMENT: status.INVALID_ARGUMENT,
  LULL_E_UNKNOWN_GUEST: status.NOT_FOUND,
  LULL_E_JOB_NOT_FOUND: status.NOT_FOUND,
  LULL_E_GUEST_BUSY: status.FAILED_PRECONDITION,
  LULL_E_IDEMPOTENCY_CONFLICT: status.ALREADY_EXISTS,
  LULL_E_JOB_TERMINAL: status.FAILED_PRECONDITION,
  LULL_E_WRONG_PHASE: status.FAILED_PRECONDITION,
  LULL_E_STACK_NOT_REGISTERED: status.FAILED_PRECONDITION,
  LULL_E_QUIESCE_REFUSED: status.ABORTED,
  LULL_E_QUIESCE_TIMEOUT: status.DEADLINE_EXCEEDED,
  LULL_E_SNAPSHOT_FAILED: status.INTERNAL,
  LULL_E_ARCHIVE_FAILED: status.INTERNAL,
  LULL_E_NO_SPACE: status.RESOURCE_EXHAUSTED,
  LULL_E_CLEANUP_FAILED: status.INTERNAL,
  LULL_E_AGENT_RESTARTED: status.UNAVAILABLE,
  LULL_E_CANCELLED: status.CANCELLED,
  LULL_E_SHUTTING_DOWN: status.UNAVAILABLE,
  LULL_E_CONFIG_INVALID: status.INVALID_ARGUMENT,
  LULL_E_UNAUTHENTICATED: status.UNAUTHENTICATED,
  LULL_E_PERMISSION_DENIED: status.PERMISSION_DENIED,
  LULL_E_RATE_LIMITED: status.RESOURCE_EXHAUSTED,
  LULL_E_STACK_STOP_FAILED: status.INTERNAL,
  LULL_E_STACK_START_FAILED: status.INTERNAL,
  LULL_E_AGENT_UNREACHABLE: status.UNAVAILABLE,
  LULL_E_COMMAND_FAILED: status.INTERNAL,
  LULL_E_GROUP_NOT_FOUND: status.NOT_FOUND,
  LULL_E_GROUP_MEMBER_FAILED: status.ABORTED,
  LULL_E_GROUP_UNSUPPORTED: status.FAILED_PRECONDITION,
  LULL_E_RESUMED_BEFORE_SNAPSHOT: status.ABORTED,
  LULL_E_DATA_DIR_LOCKED: status.FAILED_PRECONDITION,
  LULL_E_EVENTS_PRUNED: status.OUT_OF_RANGE,
  LULL_E_INTERNAL: status.INTERNAL,
} as const satisfies Record<string, status>;

export type ErrorCode = keyof typeof ERROR_CODES;

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === "string" && Object.hasOwn(ERROR_CODES, value);
}

export class LullError extends Error {
  override readonly name = "LullError";
  readonly code: ErrorCode;
  /** Retrying the same operation cannot succeed (controller-runtime's TerminalError). */
  readonly terminal: boolean;

  constructor(code: ErrorCode, message: string, options: { cause?: unknown; terminal?: boolean } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.terminal = options.terminal ?? ERROR_CODES[code] !== status.UNAVAILABLE;
  }

  get grpcStatus(): status {
    return ERROR_CODES[this.code];
  }
}

/** Any thrown value as a LullError (unknown errors become LULL_E_INTERNAL). */
export function asLullError(err: unknown): LullError {
  if (err instanceof LullError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new LullError("LULL_E_INTERNAL", message, { cause: err });
}

/** Server side: the object grpc-js sends as a failed call's status. */
export function toServiceError(err: unknown): Partial<ServiceError> {
  const e = asLullError(err);
  const metadata = new Metadata();
  metadata.set(ERROR_CODE_KEY, e.code);
  return { code: e.grpcStatus, details: `${e.code}: ${e.message}`, metadata };
}

/** Client side: a failed call's error decoded into a LullError with its stable code. */
export function fromServiceError(err: unknown): LullError {
  if (err instanceof LullError) return err;
  const se = err as Partial<ServiceError> | undefined;
  if (se && typeof se.code === "number") {
    const raw = se.metadata?.get(ERROR_CODE_KEY)[0];
    const details = se.details ?? se.message ?? "";
    if (isErrorCode(raw)) {
      const prefix = `${raw}: `;
      return new LullError(raw, details.startsWith(prefix) ? details.slice(prefix.length) : details, { cause: err });
    }
    const code: ErrorCode =
      se.code === status.UNAVAILABLE || se.code === status.DEADLINE_EXCEEDED || se.code === status.CANCELLED
        ? "LULL_E_AGENT_UNREACHABLE"
        : se.code === status.UNAUTHENTICATED
          ? "LULL_E_UNAUTHENTICATED"
          : se.code === status.PERMISSION_DENIED
            ? "LULL_E_PERMISSION_DENIED"
            : "LULL_E_INTERNAL";
    return new LullError(code, details || `gRPC status ${se.code}`, { cause: err });
  }
  return asLullError(err);
}
