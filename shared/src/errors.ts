// Stable error codes of Lull, their gRPC status, and the one place that turns
// an error into a gRPC status (server side) and back into a LullError (client side).
// Every code is documented in shared/ERRORS.md; a test checks that.
import { Metadata, status, type ServiceError } from "@grpc/grpc-js";

export const ERROR_CODE_KEY = "lull-error-code";

/**
 * code → its gRPC status and whether it is terminal: retrying the same operation cannot succeed
 * (controller-runtime's TerminalError). Terminal is opt-in: a code that does not say so — and an
 * unknown error, LULL_E_INTERNAL — may be retried. Adding a code means documenting both columns in
 * shared/ERRORS.md.
 */
export const ERROR_CODES = {
  LULL_E_INVALID_ARGUMENT: { status: status.INVALID_ARGUMENT, terminal: true },
  LULL_E_UNKNOWN_GUEST: { status: status.NOT_FOUND, terminal: true },
  LULL_E_JOB_NOT_FOUND: { status: status.NOT_FOUND, terminal: true },
  LULL_E_GUEST_BUSY: { status: status.FAILED_PRECONDITION, terminal: true },
  LULL_E_IDEMPOTENCY_CONFLICT: { status: status.ALREADY_EXISTS, terminal: true },
  LULL_E_JOB_TERMINAL: { status: status.FAILED_PRECONDITION, terminal: true },
  LULL_E_WRONG_PHASE: { status: status.FAILED_PRECONDITION, terminal: true },
  LULL_E_STACK_NOT_REGISTERED: { status: status.FAILED_PRECONDITION, terminal: true },
  LULL_E_QUIESCE_REFUSED: { status: status.ABORTED, terminal: true },
  LULL_E_QUIESCE_TIMEOUT: { status: status.DEADLINE_EXCEEDED, terminal: true },
  LULL_E_SNAPSHOT_FAILED: { status: status.INTERNAL, terminal: true },
  LULL_E_SNAPSHOT_TIMEOUT: { status: status.DEADLINE_EXCEEDED, terminal: true },
  LULL_E_ARCHIVE_FAILED: { status: status.INTERNAL, terminal: true },
  LULL_E_NO_SPACE: { status: status.RESOURCE_EXHAUSTED, terminal: true },
  LULL_E_CLEANUP_FAILED: { status: status.INTERNAL, terminal: false },
  LULL_E_AGENT_RESTARTED: { status: status.UNAVAILABLE, terminal: false },
  LULL_E_CANCELLED: { status: status.CANCELLED, terminal: true },
  LULL_E_SHUTTING_DOWN: { status: status.UNAVAILABLE, terminal: false },
  LULL_E_CONFIG_INVALID: { status: status.INVALID_ARGUMENT, terminal: true },
  LULL_E_UNAUTHENTICATED: { status: status.UNAUTHENTICATED, terminal: true },
  LULL_E_PERMISSION_DENIED: { status: status.PERMISSION_DENIED, terminal: true },
  LULL_E_NODE_CREDENTIAL: { status: status.UNAUTHENTICATED, terminal: true },
  LULL_E_RATE_LIMITED: { status: status.RESOURCE_EXHAUSTED, terminal: false },
  LULL_E_STACK_STOP_FAILED: { status: status.INTERNAL, terminal: false },
  LULL_E_STACK_START_FAILED: { status: status.INTERNAL, terminal: false },
  LULL_E_AGENT_UNREACHABLE: { status: status.UNAVAILABLE, terminal: false },
  LULL_E_COMMAND_FAILED: { status: status.INTERNAL, terminal: false },
  LULL_E_GROUP_NOT_FOUND: { status: status.NOT_FOUND, terminal: true },
  LULL_E_GROUP_MEMBER_FAILED: { status: status.ABORTED, terminal: true },
  LULL_E_GROUP_UNSUPPORTED: { status: status.FAILED_PRECONDITION, terminal: true },
  LULL_E_GROUP_COORDINATOR_LOST: { status: status.ABORTED, terminal: true },
  LULL_E_GROUP_MEMBER_LOST: { status: status.UNAVAILABLE, terminal: true },
  LULL_E_GROUP_LEASE_UNAVAILABLE: { status: status.FAILED_PRECONDITION, terminal: false },
  LULL_E_GROUP_LEASE_LOST: { status: status.ABORTED, terminal: true },
  LULL_E_RESUMED_BEFORE_SNAPSHOT: { status: status.ABORTED, terminal: true },
  LULL_E_DATA_DIR_LOCKED: { status: status.FAILED_PRECONDITION, terminal: true },
  LULL_E_EVENTS_PRUNED: { status: status.OUT_OF_RANGE, terminal: true },
  LULL_E_WAIT_TIMEOUT: { status: status.DEADLINE_EXCEEDED, terminal: false },
  LULL_E_VERIFY_FAILED: { status: status.ABORTED, terminal: true },
  LULL_E_VERIFY_TIMEOUT: { status: status.DEADLINE_EXCEEDED, terminal: true },
  LULL_E_GUEST_EXISTS: { status: status.ALREADY_EXISTS, terminal: true },
  LULL_E_GUEST_RESTORE_FAILED: { status: status.INTERNAL, terminal: true },
  LULL_E_ARCHIVE_HOSTILE: { status: status.FAILED_PRECONDITION, terminal: true },
  LULL_E_ARCHIVE_CORRUPT: { status: status.DATA_LOSS, terminal: true },
  LULL_E_TARGET_NOT_EMPTY: { status: status.FAILED_PRECONDITION, terminal: true },
  LULL_E_RESTORE_FAILED: { status: status.INTERNAL, terminal: true },
  LULL_E_RESTORE_NOT_FOUND: { status: status.NOT_FOUND, terminal: true },
  LULL_E_INTERNAL: { status: status.INTERNAL, terminal: false },
} as const satisfies Record<string, { status: status; terminal: boolean }>;

export type ErrorCode = keyof typeof ERROR_CODES;

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === "string" && Object.hasOwn(ERROR_CODES, value);
}

export class LullError extends Error {
  override readonly name = "LullError";
  readonly code: ErrorCode;
  /** Retrying the same operation cannot succeed; defaults to the code's declaration in ERROR_CODES. */
  readonly terminal: boolean;

  constructor(code: ErrorCode, message: string, options: { cause?: unknown; terminal?: boolean } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.terminal = options.terminal ?? ERROR_CODES[code].terminal;
  }

  get grpcStatus(): status {
    return ERROR_CODES[this.code].status;
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
