// Validation of every request field, before anything else runs. Malformed values are
// INVALID_ARGUMENT naming the field; a well-formed guest that is not configured is
// NOT_FOUND (LULL_E_UNKNOWN_GUEST). What passes here is safe to use in SQL, paths and argv.
import {
  QuiescePolicy,
  type AcknowledgeQuiesceRequest,
  type CancelJobRequest,
  type GetJobRequest,
  type ListJobsRequest,
  type RefuseQuiesceRequest,
  type RegisterStackRequest,
  type ReportResumedRequest,
  type StartBackupRequest,
  type UnregisterStackRequest,
  type WatchEventsRequest,
} from "@lull/proto";
import { LIMITS, LullError, validate } from "@lull/shared";
import type { GuestConfig } from "../config.js";
import { pagePosition } from "./page-token.js";
import { validGroupRunId } from "../groups/group-run.js";

export type GuestDirectory = ReadonlyMap<string, GuestConfig>;

const invalid = (message: string) => new LullError("LULL_E_INVALID_ARGUMENT", message);

export function requireGuest(guests: GuestDirectory, value: string, field = "guest_id"): GuestConfig {
  const id = validate.guestId(value, field);
  const guest = guests.get(id);
  if (!guest) throw new LullError("LULL_E_UNKNOWN_GUEST", `guest ${id} is not configured on this agent`);
  return guest;
}

export function optionalGuest(guests: GuestDirectory, value: string): GuestConfig | undefined {
  return value === "" ? undefined : requireGuest(guests, value);
}

/** 0 means "default"; anything else must lie in [min, max]. */
export function optionalRange(value: number, field: string, min: number, max: number): number | undefined {
  if (!Number.isSafeInteger(value) || value < 0) throw invalid(`${field} must be a non-negative integer`);
  if (value === 0) return undefined;
  if (value < min || value > max) throw invalid(`${field} must be 0 (the default) or between ${min} and ${max}`);
  return value;
}

function nonNegative(value: number, field: string): number {
  if (!Number.isSafeInteger(value) || value < 0) throw invalid(`${field} must be a non-negative integer`);
  return value;
}

function optionalDate(value: Date | undefined, field: string): number | undefined {
  if (value === undefined) return undefined;
  const ms = value.getTime();
  if (!Number.isFinite(ms) || ms < 0) throw invalid(`${field} is not a valid time`);
  return ms;
}

/** The fields a backup request (of one guest or of a group) shares: key, policy, timeout, requester. */
export function backupOptions(req: Pick<StartBackupRequest, "idempotencyKey" | "policy" | "quiesceTimeoutMs" | "requestedBy">) {
  const idempotencyKey = req.idempotencyKey === "" ? undefined : validate.idempotencyKey(req.idempotencyKey);
  if (![QuiescePolicy.QUIESCE_POLICY_UNSPECIFIED, QuiescePolicy.QUIESCE_POLICY_FAIL, QuiescePolicy.QUIESCE_POLICY_CRASH_CONSISTENT].includes(req.policy)) {
    throw invalid(`policy ${String(req.policy)} is not a known quiesce policy`);
  }
  return {
    idempotencyKey,
    policy: req.policy === QuiescePolicy.QUIESCE_POLICY_UNSPECIFIED ? undefined : req.policy,
    quiesceTimeoutMs: optionalRange(req.quiesceTimeoutMs, "quiesce_timeout_ms", 100, 3_600_000),
    requestedBy: validate.text(req.requestedBy, "requested_by", LIMITS.requestedBy),
  };
}

export function startBackupRequest(guests: GuestDirectory, req: StartBackupRequest) {
  return { guest: requireGuest(guests, req.guestId), ...backupOptions(req) };
}

export function jobRequest(guests: GuestDirectory, req: GetJobRequest) {
  return { guest: requireGuest(guests, req.guestId), jobId: validate.jobId(req.jobId) };
}

export function listJobsRequest(guests: GuestDirectory, req: ListJobsRequest) {
  const limit = optionalRange(req.limit, "limit", 1, 1000) ?? 50;
  return { guestId: optionalGuest(guests, req.guestId)?.id, activeOnly: req.activeOnly === true, limit, before: pagePosition(req.pageToken) };
}

export function cancelJobRequest(guests: GuestDirectory, req: CancelJobRequest) {
  const reason = validate.text(req.reason, "reason", LIMITS.reason);
  return { ...jobRequest(guests, req), reason: reason === "" ? "cancelled by request" : reason };
}

export function registerStackRequest(guests: GuestDirectory, req: RegisterStackRequest) {
  return {
    guest: requireGuest(guests, req.guestId),
    stack: validate.stack(req.stack),
    controllerId: validate.controllerId(req.controllerId),
    leaseTtlMs: optionalRange(req.leaseTtlMs, "lease_ttl_ms", 500, 600_000),
  };
}

export function unregisterStackRequest(guests: GuestDirectory, req: UnregisterStackRequest) {
  return {
    guest: requireGuest(guests, req.guestId),
    stack: validate.stack(req.stack),
    controllerId: validate.controllerId(req.controllerId),
  };
}

export function acknowledgeRequest(guests: GuestDirectory, req: AcknowledgeQuiesceRequest) {
  return {
    ...jobRequest(guests, req),
    stack: validate.stack(req.stack),
    stoppedAt: optionalDate(req.stoppedAt, "stopped_at"),
    alreadyStopped: req.alreadyStopped === true,
  };
}

export function refuseRequest(guests: GuestDirectory, req: RefuseQuiesceRequest) {
  return { ...jobRequest(guests, req), stack: validate.stack(req.stack), reason: validate.text(req.reason, "reason", LIMITS.reason) };
}

export function resumedRequest(guests: GuestDirectory, req: ReportResumedRequest) {
  return {
    ...jobRequest(guests, req),
    stack: validate.stack(req.stack),
    downtimeMs: nonNegative(req.downtimeMs, "downtime_ms"),
    resumedAt: optionalDate(req.resumedAt, "resumed_at"),
    early: req.early === true,
    postStep: req.postStep ? validate.text(req.postStep, "post_step", LIMITS.reason) : undefined,
  };
}

export function watchEventsRequest(guests: GuestDirectory, req: WatchEventsRequest) {
  const guestId = optionalGuest(guests, req.guestId)?.id;
  const hold = req.holdLease;
  if (hold !== undefined && guestId === undefined) {
    throw invalid("hold_lease needs guest_id: a stream holds the lease of a stack of the guest it follows");
  }
  return {
    guestId,
    jobId: req.jobId === "" ? undefined : validate.jobId(req.jobId),
    groupRunId: req.groupRunId === undefined || req.groupRunId === "" ? undefined : validGroupRunId(req.groupRunId),
    afterSeq: nonNegative(req.afterSeq, "after_seq"),
    forStack: req.forStack === undefined || req.forStack === "" ? undefined : validate.stack(req.forStack, "for_stack"),
    holdLease:
      hold === undefined || guestId === undefined
        ? undefined
        : {
            guestId,
            stack: validate.stack(hold.stack, "hold_lease.stack"),
            controllerId: validate.controllerId(hold.controllerId, "hold_lease.controller_id"),
            leaseTtlMs: optionalRange(hold.leaseTtlMs, "hold_lease.lease_ttl_ms", 500, 600_000),
          },
  };
}
