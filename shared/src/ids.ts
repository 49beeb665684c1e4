// Strict patterns for every id and name that can reach a command line, a path or SQL.
// Checked once at the boundary (gRPC handlers, config); code behind it may trust them.
import { LullError } from "./errors.js";

export const LIMITS = {
  id: 64,
  idempotencyKey: 128,
  reason: 1024,
  requestedBy: 128,
} as const;

/** Guest ids: Proxmox vmids (100…999999999) or names like `demo` / `ct-101`. */
export const GUEST_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
/** Stack names: compose-project-like. */
export const STACK_NAME = /^[a-z0-9][a-z0-9_-]{0,63}$/;
/** Job ids are created by the agent: `j-` + 26 lower-case base32 characters (time-sortable). */
export const JOB_ID = /^j-[0-9a-z]{26}$/;
/** Bearer tokens as `lull-agent token create` prints them: `lull_<12-char id>_<43-char base64url secret>`. */
export const TOKEN_PATTERN = /^lull_([0-9a-z]{12})_([A-Za-z0-9_-]{43})$/;
/** Where the agent's local (root-only) socket lives unless configured otherwise. */
export const DEFAULT_AGENT_SOCKET = "/run/lull/agent.sock";
/** Group runs have ids like jobs: `g-` + 26 lower-case base32 characters, time-sortable. */
export const GROUP_RUN_ID = /^g-[0-9a-z]{26}$/;
/** Configured consistency group ids: like guest-config names. */
export const GROUP_ID = /^[a-z0-9][a-z0-9_-]{0,31}$/;
/** Controller instance ids. */
export const CONTROLLER_ID = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$/;
/** Idempotency keys: printable ASCII without spaces. */
export const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,128}$/;

function check(field: string, value: string, pattern: RegExp, max: number, what: string): string {
  if (typeof value !== "string" || value.length === 0) {
    throw new LullError("LULL_E_INVALID_ARGUMENT", `${field} is required`);
  }
  if (value.length > max) {
    throw new LullError("LULL_E_INVALID_ARGUMENT", `${field} is longer than ${max} characters`);
  }
  if (!pattern.test(value)) {
    throw new LullError("LULL_E_INVALID_ARGUMENT", `${field} is not a valid ${what} (expected ${pattern.source})`);
  }
  return value;
}

export const validate = {
  guestId: (value: string, field = "guest_id") => check(field, value, GUEST_ID, LIMITS.id, "guest id"),
  stack: (value: string, field = "stack") => check(field, value, STACK_NAME, LIMITS.id, "stack name"),
  jobId: (value: string, field = "job_id") => check(field, value, JOB_ID, LIMITS.id, "job id"),
  controllerId: (value: string, field = "controller_id") =>
    check(field, value, CONTROLLER_ID, LIMITS.id, "controller id"),
  idempotencyKey: (value: string, field = "idempotency_key") =>
    check(field, value, IDEMPOTENCY_KEY, LIMITS.idempotencyKey, "idempotency key"),
  /** Free text (reasons, requester names): bounded, no control characters. */
  text(value: string, field: string, max: number): string {
    if (typeof value !== "string") throw new LullError("LULL_E_INVALID_ARGUMENT", `${field} must be a string`);
    if (value.length > max) throw new LullError("LULL_E_INVALID_ARGUMENT", `${field} is longer than ${max} characters`);
    // eslint-disable-next-line no-control-regex
    if (/[\x00-\x08\x0b-\x1f\x7f]/.test(value)) {
      throw new LullError("LULL_E_INVALID_ARGUMENT", `${field} contains control characters`);
    }
    return value;
  },
};

/** A group run id as the agent makes them (checked by the agent's API and by lullctl before it calls). */
export function validGroupRunId(value: string, field = "group_run_id"): string {
  if (typeof value !== "string" || value === "") throw new LullError("LULL_E_INVALID_ARGUMENT", `${field} is required`);
  if (value.length > LIMITS.id || !GROUP_RUN_ID.test(value)) {
    throw new LullError("LULL_E_INVALID_ARGUMENT", `${field} is not a valid group run id (expected ${GROUP_RUN_ID.source})`);
  }
  return value;
}
