// The one typed client of the agent: every RPC as a promise (or, for WatchEvents, an async
// iterable) with a deadline per attempt, failures decoded into LullErrors with their stable codes,
// and retries of non-terminal failures when the caller asks for them. lullctl, the controller's
// agent link and the test helpers call the agent through it.
import type {
  AcknowledgeQuiesceRequest,
  AgentClient,
  AgentInfo,
  CancelGroupRequest,
  CancelGroupResponse,
  CancelJobRequest,
  Event,
  GetAgentInfoRequest,
  GetGroupRequest,
  GetJobRequest,
  GroupRun,
  Job,
  ListGroupsRequest,
  ListGroupsResponse,
  ListJobsRequest,
  Backup,
  GetBackupRequest,
  ListBackupsRequest,
  ListBackupsResponse,
  ProtectBackupRequest,
  UnprotectBackupRequest,
  CancelRestoreRequest,
  GetRestoreRequest,
  ListRestoresRequest,
  ListRestoresResponse,
  Restore,
  RestorePointRequest,
  ListVerificationsRequest,
  ListVerificationsResponse,
  ListSchedulesRequest,
  ListSchedulesResponse,
  PrunePointsRequest,
  PrunePointsResponse,
  Verification,
  VerifyPointRequest,
  ListJobsResponse,
  QuiesceReply,
  RefuseQuiesceRequest,
  RegisterStackRequest,
  RegisterStackResponse,
  ReportResumedRequest,
  ReportResumedResponse,
  StartBackupRequest,
  StartBackupResponse,
  StartGroupBackupRequest,
  StartGroupBackupResponse,
  UnregisterStackRequest,
  UnregisterStackResponse,
  WatchEventsRequest,
} from "@lull/proto";
import { callUnary, createAgentClient, type ChannelTarget } from "../grpc.js";
import { watchEventStream, type WatchOptions } from "./event-stream.js";
import { NO_RETRY, withRetry, type RetryPolicy } from "./retry.js";

/** Per call: a signal that cancels it (and its retries). */
export interface AgentCallOptions {
  signal?: AbortSignal | undefined;
}

type Unary<Req, Res> = (request: Req, options?: AgentCallOptions) => Promise<Res>;

export interface AgentApi {
  getAgentInfo(request?: GetAgentInfoRequest, options?: AgentCallOptions): Promise<AgentInfo>;
  startBackup: Unary<StartBackupRequest, StartBackupResponse>;
  getJob: Unary<GetJobRequest, Job>;
  /** A page of jobs, newest first; `pageToken` (a response's `nextPageToken`) asks for the page after it. */
  listJobs: Unary<Paged<ListJobsRequest>, ListJobsResponse>;
  cancelJob: Unary<CancelJobRequest, Job>;
  registerStack: Unary<RegisterStackRequest, RegisterStackResponse>;
  unregisterStack: Unary<UnregisterStackRequest, UnregisterStackResponse>;
  acknowledgeQuiesce: Unary<AcknowledgeQuiesceRequest, QuiesceReply>;
  refuseQuiesce: Unary<RefuseQuiesceRequest, QuiesceReply>;
  reportResumed: Unary<ReportResumedRequest, ReportResumedResponse>;
  startGroupBackup: Unary<StartGroupBackupRequest, StartGroupBackupResponse>;
  getGroup: Unary<GetGroupRequest, GroupRun>;
  /** A page of group runs, newest first; `pageToken` as for listJobs. */
  listGroups: Unary<Paged<ListGroupsRequest>, ListGroupsResponse>;
  /** Answers once the members ended (the agent bounds that by its cancel grace, as for CancelJob). */
  cancelGroup: Unary<CancelGroupRequest, CancelGroupResponse>;
  /** Starts a verification of a point; answers with the run as created. */
  verifyPoint: Unary<VerifyPointRequest, Verification>;
  listVerifications: Unary<ListVerificationsRequest, ListVerificationsResponse>;
  prunePoints: Unary<PrunePointsRequest, PrunePointsResponse>;
  /** Each schedule with its last run, next run and newest tick records (operators only). */
  listSchedules: Unary<ListSchedulesRequest, ListSchedulesResponse>;
  /** The catalog: a guest's restore points, one point, its protected flag. */
  listBackups: Unary<ListBackupsRequest, ListBackupsResponse>;
  getBackup: Unary<GetBackupRequest, Backup>;
  protectBackup: Unary<ProtectBackupRequest, Backup>;
  unprotectBackup: Unary<UnprotectBackupRequest, Backup>;
  /** Starts a restore of a point (operators only); answers with the run as recorded. */
  restorePoint: Unary<RestorePointRequest, Restore>;
  getRestore: Unary<GetRestoreRequest, Restore>;
  listRestores: Unary<ListRestoresRequest, ListRestoresResponse>;
  cancelRestore: Unary<CancelRestoreRequest, Restore>;
  /**
   * Persisted events after `afterSeq`, then live ones. Ends when the server ends the stream;
   * throws a LullError when it breaks; returns quietly when `signal` aborts. Never retried.
   */
  watchEvents(request: WatchEventsRequest, signal: AbortSignal, options?: WatchOptions): AsyncIterable<Event>;
  /** The generated gRPC client underneath, for calls a test makes on purpose malformed. */
  readonly raw: AgentClient;
  close(): void;
}

/** A list request whose page token may be left out (the first page). */
export type Paged<Req extends { pageToken: string }> = Omit<Req, "pageToken"> & { pageToken?: string | undefined };

export interface AgentApiOptions {
  /** Deadline of each attempt, in milliseconds. Default 10 s. */
  callTimeoutMs?: number;
  /** Default: no retry. */
  retry?: Readonly<RetryPolicy>;
}

/** The API over an existing gRPC client (closing the API closes it). */
export function agentApiOf(client: AgentClient, options: AgentApiOptions = {}): AgentApi {
  const timeoutMs = options.callTimeoutMs ?? 10_000;
  const retry = options.retry ?? NO_RETRY;
  type Method<Req, Res> = Parameters<typeof callUnary<Req, Res>>[0];
  const unary =
    <Req, Res>(method: Method<Req, Res>): Unary<Req, Res> =>
    (request, o = {}) =>
      withRetry(() => callUnary(method.bind(client), request, { timeoutMs, ...(o.signal ? { signal: o.signal } : {}) }), retry, o.signal);
  const getAgentInfo = unary(client.getAgentInfo);
  const listJobs = unary(client.listJobs);
  const listGroups = unary(client.listGroups);
  return {
    getAgentInfo: (request = {}, o) => getAgentInfo(request, o),
    startBackup: unary(client.startBackup),
    getJob: unary(client.getJob),
    listJobs: (request, o) => listJobs({ ...request, pageToken: request.pageToken ?? "" }, o),
    cancelJob: unary(client.cancelJob),
    registerStack: unary(client.registerStack),
    unregisterStack: unary(client.unregisterStack),
    acknowledgeQuiesce: unary(client.acknowledgeQuiesce),
    refuseQuiesce: unary(client.refuseQuiesce),
    reportResumed: unary(client.reportResumed),
    startGroupBackup: unary(client.startGroupBackup),
    getGroup: unary(client.getGroup),
    listGroups: (request, o) => listGroups({ ...request, pageToken: request.pageToken ?? "" }, o),
    cancelGroup: unary(client.cancelGroup),
    verifyPoint: unary(client.verifyPoint),
    listVerifications: unary(client.listVerifications),
    prunePoints: unary(client.prunePoints),
    listSchedules: unary(client.listSchedules),
    listBackups: unary(client.listBackups),
    getBackup: unary(client.getBackup),
    protectBackup: unary(client.protectBackup),
    unprotectBackup: unary(client.unprotectBackup),
    restorePoint: unary(client.restorePoint),
    getRestore: unary(client.getRestore),
    listRestores: unary(client.listRestores),
    cancelRestore: unary(client.cancelRestore),
    watchEvents: (request, signal, watch) => watchEventStream(client, request, signal, watch),
    raw: client,
    close: () => client.close(),
  };
}

/** Connects to the agent at `target` (a unix socket, or host:port with TLS trust and a token). */
export function connectAgent(target: ChannelTarget, options: AgentApiOptions = {}): AgentApi {
  return agentApiOf(createAgentClient(target), options);
}
