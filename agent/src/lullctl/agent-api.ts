// The agent's API as lullctl uses it: promise-returning unary calls with deadlines and stable
// error codes, and the event stream as an async iterable that a signal can cancel.
import type {
  AgentInfo,
  CancelGroupRequest,
  CancelGroupResponse,
  CancelJobRequest,
  Event,
  GetGroupRequest,
  GetJobRequest,
  GroupRun,
  Job,
  ListGroupsRequest,
  ListGroupsResponse,
  ListJobsRequest,
  ListJobsResponse,
  StartBackupRequest,
  StartBackupResponse,
  StartGroupBackupRequest,
  StartGroupBackupResponse,
  WatchEventsRequest,
} from "@lull/proto";
import { callUnary, createAgentClient, fromServiceError, type AgentTlsTrust } from "@lull/shared";

/** Credentials towards a network agent (none for the local socket). */
export interface AgentAuth {
  token?: string | undefined;
  tls?: AgentTlsTrust | undefined;
}

export interface AgentApi {
  getAgentInfo(): Promise<AgentInfo>;
  startBackup(request: StartBackupRequest): Promise<StartBackupResponse>;
  getJob(request: GetJobRequest): Promise<Job>;
  listJobs(request: ListJobsRequest): Promise<ListJobsResponse>;
  cancelJob(request: CancelJobRequest): Promise<Job>;
  startGroupBackup(request: StartGroupBackupRequest): Promise<StartGroupBackupResponse>;
  getGroup(request: GetGroupRequest): Promise<GroupRun>;
  listGroups(request: ListGroupsRequest): Promise<ListGroupsResponse>;
  /** Answers once the members ended (the agent bounds that by its cancel grace, as for CancelJob). */
  cancelGroup(request: CancelGroupRequest): Promise<CancelGroupResponse>;
  /**
   * Persisted events after `afterSeq`, then live ones. Ends when the server ends the stream;
   * throws a LullError when it breaks; returns quietly when `signal` aborts.
   */
  watchEvents(request: WatchEventsRequest, signal: AbortSignal): AsyncIterable<Event>;
  close(): void;
}

export function connectAgent(address: string, callTimeoutMs: number, auth: AgentAuth = {}): AgentApi {
  const client = createAgentClient({ address, tls: auth.tls, token: auth.token });
  const opts = { timeoutMs: callTimeoutMs };
  return {
    getAgentInfo: () => callUnary(client.getAgentInfo.bind(client), {}, opts),
    startBackup: (req) => callUnary(client.startBackup.bind(client), req, opts),
    getJob: (req) => callUnary(client.getJob.bind(client), req, opts),
    listJobs: (req) => callUnary(client.listJobs.bind(client), req, opts),
    cancelJob: (req) => callUnary(client.cancelJob.bind(client), req, opts),
    startGroupBackup: (req) => callUnary(client.startGroupBackup.bind(client), req, opts),
    getGroup: (req) => callUnary(client.getGroup.bind(client), req, opts),
    listGroups: (req) => callUnary(client.listGroups.bind(client), req, opts),
    cancelGroup: (req) => callUnary(client.cancelGroup.bind(client), req, opts),
    async *watchEvents(request, signal) {
      if (signal.aborted) return;
      const call = client.watchEvents(request);
      const onAbort = () => call.cancel();
      signal.addEventListener("abort", onAbort, { once: true });
      try {
        for await (const event of call) yield event as Event;
      } catch (err) {
        if (signal.aborted) return;
        throw fromServiceError(err);
      } finally {
        signal.removeEventListener("abort", onAbort);
        call.cancel();
      }
    },
    close: () => client.close(),
  };
}
