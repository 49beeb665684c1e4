// Tests: every RPC of lull.v1.Agent called generically, by its key in the generated
// `AgentService`, so a scope test covers RPCs added later without being edited (it fails instead
// when it does not know how to address one to a guest).
import type { ClientReadableStream } from "@grpc/grpc-js";
import * as proto from "@lull/proto";
import { AgentService, type AgentClient } from "@lull/proto";
import { LullError, callUnary, fromServiceError } from "@lull/shared";

export interface RpcInfo {
  /** Key in AgentService / method name on the client (`startBackup`). */
  key: string;
  /** Name on the wire (`StartBackup`). */
  rpc: string;
  streaming: boolean;
}

export function agentRpcs(): RpcInfo[] {
  return Object.entries(AgentService).map(([key, m]) => ({
    key,
    rpc: m.path.slice(m.path.lastIndexOf("/") + 1),
    streaming: m.responseStream,
  }));
}

interface MessageCodec {
  fromPartial(partial: Record<string, unknown>): unknown;
}

/** RPCs whose request message is not `<Rpc>Request`. */
const REQUEST_MESSAGES: Readonly<Record<string, string>> = { WatchEventBatches: "WatchEventsRequest" };

/** A complete request message of `rpc` (`<Rpc>Request` unless REQUEST_MESSAGES says, defaults filled in). */
export function requestFor(rpc: string, partial: Record<string, unknown>): unknown {
  const name = REQUEST_MESSAGES[rpc] ?? `${rpc}Request`;
  const codec = (proto as unknown as Record<string, MessageCodec | undefined>)[name];
  if (!codec?.fromPartial) throw new Error(`no request message ${name} in @lull/proto`);
  return codec.fromPartial(partial);
}

export type CallOutcome = { ok: true; value: unknown } | { ok: false; error: LullError };

/**
 * Calls `key` with `request`: a unary call's result, or for a stream whether it delivered (ok) or
 * failed before `settleMs` — a stream still open then counts as accepted and is cancelled.
 */
export function invoke(client: AgentClient, info: RpcInfo, request: unknown, timeoutMs = 5_000, settleMs = 300): Promise<CallOutcome> {
  const method = (client as unknown as Record<string, (...args: unknown[]) => unknown>)[info.key];
  if (!method) return Promise.reject(new Error(`client has no method ${info.key}`));
  if (!info.streaming) {
    return callUnary(method.bind(client) as Parameters<typeof callUnary>[0], request, { timeoutMs }).then(
      (value): CallOutcome => ({ ok: true, value }),
      (err: unknown): CallOutcome => ({ ok: false, error: fromServiceError(err) }),
    );
  }
  return new Promise<CallOutcome>((resolve) => {
    const call = method.call(client, request) as ClientReadableStream<unknown>;
    let settled = false;
    const settle = (outcome: CallOutcome) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      call.cancel();
      resolve(outcome);
    };
    const timer = setTimeout(() => settle({ ok: true, value: undefined }), settleMs);
    call.on("data", (value: unknown) => settle({ ok: true, value }));
    call.on("error", (err: unknown) => settle({ ok: false, error: fromServiceError(err) }));
    call.on("end", () => settle({ ok: true, value: undefined }));
  });
}
