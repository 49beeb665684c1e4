// The lull.v1.Agent service: each handler validates its request first, then acts through
// the ledger (job changes), the runner (runs, cancellation) or the store (reads, leases).
// Errors leave through unaryHandler → toServiceError, which sets the `lull-error-code` trailer.
import type { ServerWritableStream } from "@grpc/grpc-js";
import { EventKind, type AgentServer, type Event, type EventBatch, type Job, type WatchEventsRequest } from "@lull/proto";
import { LullError, asLullError, isTerminal, phaseName, toServiceError, unaryHandler, type Clock, type Logger } from "@lull/shared";
import { snapshotKind, type AgentConfig, type GuestConfig } from "../config.js";
import type { EventBus } from "../events/bus.js";
import { streamEvents } from "../events/watch.js";
import type { GroupLedger } from "../groups/ledger.js";
import type { GroupHandlers } from "../api/group-handlers.js";
import { createScheduleHandlers, type ScheduleHandlers } from "../api/schedule-handlers.js";
import type { PointHandlers } from "../api/point-handlers.js";
import { newJobId } from "../jobs/job-id.js";
import { eventFor, newJobRecord, toApiJob, type JobRecord } from "../jobs/job.js";
import type { JobLedger } from "../jobs/ledger.js";
import type { JobEvent } from "../jobs/machine.js";
import { quiesceSettings } from "../jobs/policy.js";
import type { JobRunner } from "../jobs/runner.js";
import { GroupCommit } from "../ledger/group-commit.js";
import { LeaseHolds, type HeldLease } from "../jobs/lease-holds.js";
import * as check from "../api/validate.js";
import { pageOf } from "../api/page-token.js";
import { eventBatchMessages, eventMessages, type EventSender } from "./event-senders.js";
import type { RestoreHandlers } from "../api/restore-handlers.js";
import type { RemoteGroupHandlers } from "../api/remote-group-handlers.js";
import { principalOf } from "../auth/guard.js";

export interface AgentServiceDeps {
  config: Readonly<AgentConfig>;
  ledger: JobLedger;
  runner: JobRunner;
  bus: EventBus;
  clock: Clock;
  log: Logger;
  version: string;
  startedAt: Date;
  /** True once the agent is stopping: no new jobs. */
  isShuttingDown: () => boolean;
  /** Consistency groups: their runs, and the group RPCs' logic. */
  groupLedger: GroupLedger;
  groupHandlers: GroupHandlers;
  /** Verification and prune of restore points. */
  pointHandlers: PointHandlers;
  /** ListSchedules; without it the agent answers that it has no schedules. */
  scheduleHandlers?: ScheduleHandlers | undefined;
  /** JoinGroupRun and ReleaseGroupMember (members of groups coordinated on other nodes); without them FAILED_PRECONDITION. */
  remoteGroupHandlers?: RemoteGroupHandlers | undefined;
  /** The restore RPCs; without them (a core built for tests) they answer FAILED_PRECONDITION. */
  restoreHandlers?: RestoreHandlers | undefined;
  /** Told of every send of live events to one watcher (the metrics' hand-off delay). */
  onLiveHandoff?: ((events: readonly Event[], now: number) => void) | undefined;
}

export interface AgentServiceHandle {
  implementation: AgentServer;
  /** Ends every open WatchEvents and WatchEventBatches stream (agent shutdown). */
  closeStreams(): void;
  /** Stack leases that open streams hold now. */
  leasesHeldByStreams(): number;
}


export function createAgentService(deps: AgentServiceDeps): AgentServiceHandle {
  const { config, ledger, runner, clock, log } = deps;
  const store = ledger.store;
  const guests: check.GuestDirectory = new Map(config.guests.map((g) => [g.id, g]));
  const streams = new Set<AbortController>();
  // The calls every controller makes in bursts (lease renewals, acknowledgements, resumes) share commits.
  const together = new GroupCommit(ledger.ledger);
  // Lease renewals write no event and a restart makes them moot: their commits need not wait for the disk.
  const leases = new GroupCommit(ledger.ledger, { durable: false });
  /** Creates or renews stacks' leases in the next shared commit; once committed, logs each new holder. */
  const renewLeases = async (list: readonly HeldLease[]): Promise<void> => {
    const takenOver = await leases.run(() => {
      const now = clock.now();
      return list.flatMap((lease) => {
        const previous = store.renewLease(lease, now);
        return previous === lease.controllerId ? [] : [{ lease, previous }];
      });
    });
    for (const { lease, previous } of takenOver) {
      log.info({ guestId: lease.guestId, stack: lease.stack, controllerId: lease.controllerId, previous: previous ?? null }, "stack registered");
    }
  };
  // Leases that controllers' event streams hold (WatchEventsRequest.hold_lease): renewed here.
  const holds = new LeaseHolds({ renew: renewLeases, clock, log });

  /** A job that does not exist and one of another guest are the same answer: not found. */
  const noJob = (guest: GuestConfig, jobId: string) => new LullError("LULL_E_JOB_NOT_FOUND", `guest ${guest.id} has no job ${jobId}`);
  const jobOf = (guest: GuestConfig, jobId: string): JobRecord => {
    const job = store.getJob(jobId);
    if (!job || job.guestId !== guest.id) throw noJob(guest, jobId);
    return job;
  };
  /**
   * A controller's change to a job of its guest, queued for the shared commit. The guest check runs
   * on the record the change loads inside the transaction: one read of the job, not a second one
   * before the call is queued (every stack of a guest acknowledges the same quiesce at once).
   */
  const controllerChange = (guest: GuestConfig, jobId: string, make: (job: JobRecord, now: number) => JobEvent): Promise<JobRecord> =>
    together.run(() => {
      try {
        return ledger.apply(jobId, (job, now) => {
          if (job.guestId !== guest.id) throw noJob(guest, jobId);
          return make(job, now);
        });
      } catch (err) {
        throw asLullError(err).code === "LULL_E_JOB_NOT_FOUND" ? noJob(guest, jobId) : err;
      }
    });
  const api = (job: JobRecord): Job => toApiJob(job);
  /** Calls that are not batched commit what earlier batched calls queued first (arrival order holds). */
  const inOrder = <Req, Res>(fn: (req: Req) => Res | Promise<Res>) => (req: Req) => {
    leases.flushNow();
    together.flushNow();
    return fn(req);
  };
  const batched = new Set(["RegisterStack", "UnregisterStack", "AcknowledgeQuiesce", "RefuseQuiesce", "ReportResumed"]);
  const restores = (): RestoreHandlers => {
    if (!deps.restoreHandlers) throw new LullError("LULL_E_WRONG_PHASE", "this agent was started without its restore side");
    return deps.restoreHandlers;
  };
  const handle = <Req, Res>(method: string, fn: (req: Req) => Res | Promise<Res>) =>
    unaryHandler<Req, Res>(batched.has(method) ? fn : inOrder(fn), (err) => {
      const e = asLullError(err);
      const level = e.code === "LULL_E_INTERNAL" ? "error" : "info";
      log[level]({ method, code: e.code, err: e.message }, "call failed");
    });
  const groupHandlers = deps.groupHandlers;

  const implementation: AgentServer = {
    getAgentInfo: handle("GetAgentInfo", () => ({
      node: config.node,
      version: deps.version,
      startedAt: deps.startedAt,
      // A vzdump guest: no driver; `snapshot` is the vzdump mode asked for (vzdump may fall back).
      guests: config.guests.map((g) =>
        g.engine === "native"
          ? { id: g.id, engine: g.engine, driver: g.driver, snapshot: snapshotKind(g) }
          : { id: g.id, engine: g.engine, driver: "", snapshot: g.mode ?? config.pve.vzdump.mode },
      ),
      lastEventSeq: store.events.lastSeq(),
    })),

    startBackup: handle("StartBackup", (req) => {
      const r = check.startBackupRequest(guests, req);
      if (deps.isShuttingDown()) throw new LullError("LULL_E_SHUTTING_DOWN", "the agent is shutting down and takes no new backups");
      const now = clock.now();
      const id = newJobId(now);
      const record = newJobRecord({
        id,
        guestId: r.guest.id,
        engine: r.guest.engine,
        ...quiesceSettings(config, r.guest, r),
        // Without a key a request is not retryable; the job id serves as its key.
        idempotencyKey: r.idempotencyKey ?? id,
        requestedBy: r.requestedBy,
        now,
      });
      const { job, created } = ledger.create(record, eventFor(record, EventKind.EVENT_KIND_PHASE));
      if (created) runner.start(job);
      return { job: api(job), created };
    }),

    getJob: handle("GetJob", (req) => {
      const r = check.jobRequest(guests, req);
      return api(jobOf(r.guest, r.jobId));
    }),

    listJobs: handle("ListJobs", (req) => {
      const r = check.listJobsRequest(guests, req);
      const { page, next } = pageOf(store.listJobs({ ...r, limit: r.limit + 1 }), r.limit, (x) => ({ createdAt: x.createdAt?.getTime() ?? 0, id: x.id }));
      return { jobs: page.map(api), nextPageToken: next };
    }),

    cancelJob: handle("CancelJob", async (req) => {
      const r = check.cancelJobRequest(guests, req);
      const job = jobOf(r.guest, r.jobId);
      if (isTerminal(job.phase)) throw new LullError("LULL_E_JOB_TERMINAL", `job ${job.id} has already ended (${phaseName(job.phase)})`);
      log.info({ jobId: r.jobId, reason: r.reason }, "cancel requested");
      return api(await runner.cancel(r.jobId, r.reason));
    }),

    registerStack: handle("RegisterStack", async (req) => {
      const r = check.registerStackRequest(guests, req);
      const leaseTtlMs = r.leaseTtlMs ?? config.leaseTtlMs;
      await renewLeases([{ guestId: r.guest.id, stack: r.stack, controllerId: r.controllerId, ttlMs: leaseTtlMs }]);
      const active = store.activeJob(r.guest.id);
      return { leaseTtlMs, activeJob: active ? api(active) : undefined, lastEventSeq: store.events.lastSeq(), streamKeepsLease: true };
    }),

    unregisterStack: handle("UnregisterStack", async (req) => {
      const r = check.unregisterStackRequest(guests, req);
      // No stream renews it after this, even one whose cancel has not arrived yet.
      holds.release({ guestId: r.guest.id, stack: r.stack, controllerId: r.controllerId });
      if (await leases.run(() => store.dropLease(r.guest.id, r.stack, r.controllerId))) {
        log.info({ guestId: r.guest.id, stack: r.stack, controllerId: r.controllerId }, "stack unregistered");
      }
      return {};
    }),

    acknowledgeQuiesce: handle("AcknowledgeQuiesce", async (req) => {
      const r = check.acknowledgeRequest(guests, req);
      const job = await controllerChange(r.guest, r.jobId, (_job, now) => ({ type: "stack-acknowledged", stack: r.stack, at: r.stoppedAt ?? now, alreadyStopped: r.alreadyStopped }));
      return { job: api(job) };
    }),

    refuseQuiesce: handle("RefuseQuiesce", async (req) => {
      const r = check.refuseRequest(guests, req);
      return { job: api(await controllerChange(r.guest, r.jobId, () => ({ type: "stack-refused", stack: r.stack, reason: r.reason }))) };
    }),

    reportResumed: handle("ReportResumed", async (req) => {
      const r = check.resumedRequest(guests, req);
      await controllerChange(r.guest, r.jobId, (_job, now) => ({
        type: "stack-resumed",
        stack: r.stack,
        downtimeMs: r.downtimeMs,
        early: r.early,
        at: r.resumedAt ?? now,
        postStep: r.postStep,
      }));
      return {};
    }),

    startGroupBackup: handle("StartGroupBackup", (req) => groupHandlers.startGroupBackup(req)),
    getGroup: handle("GetGroup", (req) => groupHandlers.getGroup(req)),
    listGroups: handle("ListGroups", (req) => groupHandlers.listGroups(req)),
    cancelGroup: handle("CancelGroup", (req) => groupHandlers.cancelGroup(req)),
    verifyPoint: handle("VerifyPoint", (req) => deps.pointHandlers.verifyPoint(req)),
    listVerifications: handle("ListVerifications", (req) => deps.pointHandlers.listVerifications(req)),
    prunePoints: handle("PrunePoints", (req) => deps.pointHandlers.prunePoints(req)),
    listSchedules: handle("ListSchedules", (req) => (deps.scheduleHandlers ?? createScheduleHandlers(() => undefined)).listSchedules(req)),
    listBackups: handle("ListBackups", (req) => deps.pointHandlers.listBackups(req)),
    getBackup: handle("GetBackup", (req) => deps.pointHandlers.getBackup(req)),
    protectBackup: handle("ProtectBackup", (req) => deps.pointHandlers.protectBackup(req)),
    unprotectBackup: handle("UnprotectBackup", (req) => deps.pointHandlers.unprotectBackup(req)),
    restorePoint: handle("RestorePoint", (req) => restores().restorePoint(req)),
    getRestore: handle("GetRestore", (req) => restores().getRestore(req)),
    listRestores: handle("ListRestores", (req) => restores().listRestores(req)),
    cancelRestore: handle("CancelRestore", (req) => restores().cancelRestore(req)),

    watchEvents: (call: ServerWritableStream<WatchEventsRequest, Event>) => {
      void watch(call, "WatchEvents", eventMessages);
    },
    watchEventBatches: (call: ServerWritableStream<WatchEventsRequest, EventBatch>) => {
      void watch(call, "WatchEventBatches", eventBatchMessages);
    },

    joinGroupRun: (call) => {
      const remote = deps.remoteGroupHandlers;
      if (remote) return remote.joinGroupRun(call, principalOf(call));
      call.emit("error", toServiceError(new LullError("LULL_E_GROUP_UNSUPPORTED", "this agent does not run members of groups coordinated on other nodes")));
    },

    releaseGroupMember: unaryHandler((req, call) => {
      const remote = deps.remoteGroupHandlers;
      if (!remote) throw new LullError("LULL_E_GROUP_UNSUPPORTED", "this agent does not run members of groups coordinated on other nodes");
      return remote.releaseGroupMember(req, principalOf(call));
    }),
  };

  const onLiveHandoff = deps.onLiveHandoff;
  /** `send`, telling `onLiveHandoff` of live events as they are handed to the stream. */
  const observed = (send: EventSender): EventSender =>
    onLiveHandoff
      ? (events, fromStore) => {
          if (!fromStore) onLiveHandoff(events, clock.now());
          return send(events, fromStore);
        }
      : send;

  /** WatchEvents and WatchEventBatches: the same stream, sent by `senderOf`. */
  async function watch(
    call: ServerWritableStream<WatchEventsRequest, Event> | ServerWritableStream<WatchEventsRequest, EventBatch>,
    method: string,
    senderOf: (stream: typeof call, signal: AbortSignal) => EventSender,
  ): Promise<void> {
    const stop = new AbortController();
    const onCancel = () => stop.abort();
    call.on("cancelled", onCancel);
    call.on("error", onCancel);
    let releaseHold = () => {};
    let holdLost: unknown;
    try {
      const r = check.watchEventsRequest(guests, call.request);
      if (r.jobId !== undefined) {
        const job = store.getJob(r.jobId);
        if (!job || (r.guestId !== undefined && job.guestId !== r.guestId)) {
          throw new LullError("LULL_E_JOB_NOT_FOUND", `no job ${r.jobId}${r.guestId ? ` for guest ${r.guestId}` : ""}`);
        }
      }
      if (r.groupRunId !== undefined && !deps.groupLedger.store.getRun(r.groupRunId)) {
        throw new LullError("LULL_E_GROUP_NOT_FOUND", `no group run ${r.groupRunId}`);
      }
      if (deps.isShuttingDown()) throw new LullError("LULL_E_SHUTTING_DOWN", "the agent is shutting down");
      if (r.holdLease) {
        const h = r.holdLease;
        const lease: HeldLease = { guestId: h.guestId, stack: h.stack, controllerId: h.controllerId, ttlMs: h.leaseTtlMs ?? config.leaseTtlMs };
        await renewLeases([lease]);
        if (call.cancelled) return;
        releaseHold = holds.hold(lease, (err) => {
          holdLost = new LullError("LULL_E_INTERNAL", `the agent could not renew the lease of stack ${lease.stack} this stream holds (${asLullError(err).message}): renew it by RegisterStack`);
          stop.abort();
        });
      }
      streams.add(stop);
      await streamEvents({
        store,
        bus: deps.bus,
        filter: { guestId: r.guestId, jobId: r.jobId, groupRunId: r.groupRunId, forStack: r.forStack },
        afterSeq: r.afterSeq,
        signal: stop.signal,
        send: observed(senderOf(call, stop.signal)),
      });
      if (holdLost !== undefined) throw holdLost;
      if (!call.cancelled) call.end();
    } catch (err) {
      const e = asLullError(err);
      log.info({ method, code: e.code, err: e.message }, "call failed");
      if (!call.cancelled) call.emit("error", toServiceError(e));
    } finally {
      releaseHold();
      streams.delete(stop);
      call.off("cancelled", onCancel);
      call.off("error", onCancel);
    }
  }

  return {
    implementation,
    leasesHeldByStreams: () => holds.size,
    closeStreams() {
      holds.close();
      for (const s of streams) s.abort();
    },
  };
}
