// Faults between a controller under test and the real agent, injected into its client (the
// shared AgentApi): every call recorded, calls that hang (a blackholed agent), calls that fail
// once with a transient error, calls the agent answers with an error, event streams that break and cannot be reopened.
import type { Event } from "@lull/proto";
import { LullError, type AgentApi, type AgentCallOptions, type ErrorCode } from "@lull/shared";

export interface AgentCall {
  method: string;
  request: unknown;
  at: number;
  /** What the agent answered, once it did. */
  response?: unknown;
}

type UnaryMethod = Exclude<keyof AgentApi, "watchEvents" | "raw" | "close">;
const UNARY: readonly UnaryMethod[] = [
  "getAgentInfo", "startBackup", "getJob", "listJobs", "cancelJob", "registerStack", "unregisterStack",
  "acknowledgeQuiesce", "refuseQuiesce", "reportResumed", "startGroupBackup", "getGroup", "listGroups", "cancelGroup",
];

/** A call the agent never answers: it ends as a real one would, at its deadline or its cancellation. */
const hung = (deadlineMs: number, signal: AbortSignal | undefined) =>
  new Promise<never>((_, reject) => {
    const timer = setTimeout(() => reject(new LullError("LULL_E_AGENT_UNREACHABLE", "deadline exceeded")), deadlineMs);
    signal?.addEventListener("abort", () => (clearTimeout(timer), reject(new LullError("LULL_E_CANCELLED", "call cancelled"))), { once: true });
  });

export class AgentFaults {
  readonly calls: AgentCall[] = [];
  /** Unary methods (`getJob`, ...) that never answer: a blackholed agent. */
  readonly hang = new Set<string>();
  /** Unary methods whose next call fails once, transiently. */
  readonly failNext = new Set<string>();
  /** Unary methods that the agent answers with this error (its stable code) until removed. */
  readonly answerWith = new Map<string, ErrorCode>();
  /** Unary methods whose answers are changed before the controller sees them (an older agent's reply). */
  readonly alter = new Map<string, (response: unknown) => unknown>();
  private streamsEnabled = true;
  private readonly openStreams = new Set<AbortController>();

  callsOf(method: string): AgentCall[] {
    return this.calls.filter((c) => c.method === method);
  }

  /** false: every open WatchEvents stream breaks and new ones fail (unary calls still work). */
  setStreams(enabled: boolean): void {
    this.streamsEnabled = enabled;
    if (!enabled) for (const cut of this.openStreams) cut.abort();
  }

  /** `api` (whose deadline per call is `callTimeoutMs`) with these faults. */
  wrap(api: AgentApi, callTimeoutMs: number): AgentApi {
    const wrapped = { ...api } as Record<string, unknown>;
    for (const method of UNARY) {
      const call = api[method] as (request: unknown, options?: AgentCallOptions) => Promise<unknown>;
      wrapped[method] = async (request: unknown, options?: AgentCallOptions) => {
        const record: AgentCall = { method, request, at: Date.now() };
        this.calls.push(record);
        if (this.hang.has(method)) return hung(callTimeoutMs, options?.signal);
        if (this.failNext.delete(method)) throw new LullError("LULL_E_SHUTTING_DOWN", `${method}: injected transient failure`);
        const code = this.answerWith.get(method);
        if (code !== undefined) throw new LullError(code, `${method}: injected agent error`);
        const response = await call(request, options);
        record.response = this.alter.get(method)?.(response) ?? response;
        return record.response;
      };
    }
    wrapped.watchEvents = (request: Parameters<AgentApi["watchEvents"]>[0], signal: AbortSignal, options?: Parameters<AgentApi["watchEvents"]>[2]) =>
      this.stream(api, request, signal, options);
    return wrapped as unknown as AgentApi;
  }

  private async *stream(api: AgentApi, ...[request, signal, options]: Parameters<AgentApi["watchEvents"]>): AsyncIterable<Event> {
    this.calls.push({ method: "watchEvents", request, at: Date.now() });
    if (!this.streamsEnabled) throw new LullError("LULL_E_AGENT_UNREACHABLE", "streams disabled by the test");
    const cut = new AbortController();
    const onAbort = () => cut.abort();
    signal.addEventListener("abort", onAbort, { once: true });
    this.openStreams.add(cut);
    try {
      yield* api.watchEvents(request, cut.signal, options);
    } finally {
      this.openStreams.delete(cut);
      signal.removeEventListener("abort", onAbort);
    }
    if (cut.signal.aborted && !signal.aborted) throw new LullError("LULL_E_AGENT_UNREACHABLE", "stream cut by the test");
  }
}
