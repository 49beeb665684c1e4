// The JSON documents `lullctl --json` prints: the API's messages with enum names instead of numbers,
// ISO timestamps and null for "not set". Field names stay stable for scripts.
import { Phase, type AgentInfo, type Event, type GroupInfo, type GroupRun, type Job, type StackStatus } from "@lull/proto";
import { modeName, phaseName } from "@lull/shared";
import { consistencyName, eventKindName, policyName, stackStateName } from "./names.js";

const iso = (d: Date | undefined) => (d ? d.toISOString() : null);

export function stackJson(s: StackStatus) {
  return {
    stack: s.stack,
    state: stackStateName(s.state),
    reason: s.reason || null,
    downtimeMs: s.downtimeMs,
    resumedEarly: s.resumedEarly,
    acknowledgedAt: iso(s.acknowledgedAt),
    resumedAt: iso(s.resumedAt),
    postStep: s.postStep ?? null,
  };
}

export function jobJson(job: Job) {
  return {
    id: job.id,
    guestId: job.guestId,
    phase: phaseName(job.phase),
    engine: job.engine,
    mode: modeName(job.mode),
    consistency: consistencyName(job.consistency),
    policy: policyName(job.policy),
    idempotencyKey: job.idempotencyKey || null,
    requestedBy: job.requestedBy || null,
    createdAt: iso(job.createdAt),
    updatedAt: iso(job.updatedAt),
    snapshotAt: iso(job.snapshotAt),
    finishedAt: iso(job.finishedAt),
    error:
      job.phase === Phase.PHASE_FAILED || job.phase === Phase.PHASE_CANCELLED || job.errorCode
        ? { code: job.errorCode || null, message: job.errorMessage || null, phase: phaseName(job.failedIn) }
        : null,
    archive: job.archivePath ? { path: job.archivePath, bytes: job.archiveBytes } : null,
    progress: { bytesDone: job.bytesDone, bytesTotal: job.bytesTotal },
    durationsMs: { quiesce: job.quiesceMs, snapshot: job.snapshotMs, archive: job.archiveMs, total: job.totalMs },
    quiesceTimeoutMs: job.quiesceTimeoutMs,
    stacks: job.stacks.map(stackJson),
    groupRunId: job.groupRunId || null,
  };
}

export function eventJson(e: Event) {
  return {
    seq: e.seq,
    at: iso(e.at),
    jobId: e.jobId,
    guestId: e.guestId,
    kind: eventKindName(e.kind),
    phase: phaseName(e.phase),
    mode: modeName(e.mode),
    consistency: consistencyName(e.consistency),
    snapshotAt: iso(e.snapshotAt),
    bytesDone: e.bytesDone,
    bytesTotal: e.bytesTotal,
    stack: e.stack || null,
    stackState: e.stack ? stackStateName(e.stackState) : null,
    downtimeMs: e.downtimeMs,
    errorCode: e.errorCode || null,
    message: e.message || null,
    groupRunId: e.groupRunId || null,
  };
}

export function infoJson(info: AgentInfo) {
  return {
    node: info.node,
    version: info.version,
    startedAt: iso(info.startedAt),
    lastEventSeq: info.lastEventSeq,
    guests: info.guests.map((g) => ({ id: g.id, engine: g.engine, driver: g.driver, snapshot: g.snapshot })),
  };
}

export function groupJson(run: GroupRun) {
  return {
    id: run.id,
    groupId: run.groupId || null,
    guestIds: [...run.guestIds],
    jobIds: [...run.jobIds],
    phase: phaseName(run.phase),
    consistency: consistencyName(run.consistency),
    policy: policyName(run.policy),
    idempotencyKey: run.idempotencyKey || null,
    requestedBy: run.requestedBy || null,
    createdAt: iso(run.createdAt),
    quiescedAt: iso(run.quiescedAt),
    snapshotAt: iso(run.snapshotAt),
    finishedAt: iso(run.finishedAt),
    error:
      run.phase === Phase.PHASE_FAILED || run.errorCode
        ? { code: run.errorCode || null, message: run.errorMessage || null, phase: phaseName(run.failedIn), failedGuests: [...run.failedGuests] }
        : null,
    durationsMs: { quiesce: run.quiesceMs, snapshot: run.snapshotMs, archive: run.archiveMs, total: run.totalMs },
    quiesceTimeoutMs: run.quiesceTimeoutMs,
    members: run.members.map(jobJson),
  };
}

export function groupInfoJson(g: GroupInfo) {
  return { id: g.id, guestIds: [...g.guestIds], policy: policyName(g.policy), quiesceTimeoutMs: g.quiesceTimeoutMs || null };
}
