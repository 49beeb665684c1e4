// gRPC plumbing both daemons use: a promise-returning unary call with a deadline,
// a server-side wrapper that maps thrown errors to statuses, and channel creation.
import {
  InterceptingCall,
  Metadata,
  credentials,
  type CallOptions,
  type ChannelCredentials,
  type ChannelOptions,
  type ClientUnaryCall,
  type Interceptor,
  type ServerUnaryCall,
  type ServiceError,
  type handleUnaryCall,
  type sendUnaryData,
} from "@grpc/grpc-js";
import { AgentClient } from "@lull/proto";
import { fromServiceError, toServiceError } from "./errors.js";
import { agentChannelCredentials, type AgentTlsTrust } from "./tls.js";

type UnaryMethod<Req, Res> = (
  request: Req,
  metadata: Metadata,
  options: Partial<CallOptions>,
  callback: (error: ServiceError | null, response: Res) => void,
) => ClientUnaryCall;

export interface CallOpts {
  /** Deadline relative to now, in milliseconds. Default 10 s. */
  timeoutMs?: number;
  metadata?: Metadata;
  signal?: AbortSignal;
}

/** Calls a unary method and resolves with its response; failures are LullErrors with stable codes. */
export function callUnary<Req, Res>(method: UnaryMethod<Req, Res>, request: Req, opts: CallOpts = {}): Promise<Res> {
  return new Promise<Res>((resolve, reject) => {
    if (opts.signal?.aborted) {
      reject(opts.signal.reason);
      return;
    }
    const deadline = new Date(Date.now() + (opts.timeoutMs ?? 10_000));
    const call = method(request, opts.metadata ?? new Metadata(), { deadline }, (err, res) => {
      opts.signal?.removeEventListener("abort", onAbort);
      if (err) reject(fromServiceError(err));
      else resolve(res);
    });
    const onAbort = () => call.cancel();
    opts.signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** Server side: turns an async handler into a grpc-js unary handler; thrown errors become statuses. */
export function unaryHandler<Req, Res>(
  fn: (request: Req, call: ServerUnaryCall<Req, Res>) => Promise<Res> | Res,
  onError?: (err: unknown, call: ServerUnaryCall<Req, Res>) => void,
): handleUnaryCall<Req, Res> {
  return (call: ServerUnaryCall<Req, Res>, callback: sendUnaryData<Res>) => {
    Promise.resolve()
      .then(() => fn(call.request, call))
      .then(
        (res) => callback(null, res),
        (err: unknown) => {
          onError?.(err, call);
          callback(toServiceError(err) as ServiceError, null);
        },
      );
  };
}

export interface ChannelTarget {
  /** `host:port`, or `unix:///path/to/socket`. */
  address: string;
  /** Channel credentials as given; otherwise from `tls`; otherwise plain (local socket, tests). */
  credentials?: ChannelCredentials;
  /** Trust in the agent's TLS certificate (pinned fingerprint and/or CA). */
  tls?: AgentTlsTrust | undefined;
  /** Bearer token sent as `authorization` metadata on every call (never logged). */
  token?: string | undefined;
  options?: ChannelOptions;
}

/** The metadata key and scheme of a credential: `authorization: Bearer <token>`. */
export const AUTHORIZATION_KEY = "authorization";

/** A client interceptor that adds `authorization: Bearer <token>` to every call. */
export function bearerTokenInterceptor(token: string): Interceptor {
  const value = `Bearer ${token}`;
  return (options, nextCall) =>
    new InterceptingCall(nextCall(options), {
      start(metadata, listener, next) {
        metadata.set(AUTHORIZATION_KEY, value);
        next(metadata, listener);
      },
    });
}

export const DEFAULT_CHANNEL_OPTIONS: ChannelOptions = {
  "grpc.keepalive_time_ms": 10_000,
  "grpc.keepalive_timeout_ms": 5_000,
  "grpc.keepalive_permit_without_calls": 1,
  "grpc.initial_reconnect_backoff_ms": 200,
  "grpc.max_reconnect_backoff_ms": 2_000,
  "grpc.max_receive_message_length": 4 * 1024 * 1024,
};

/** A client of the agent's API. */
export function createAgentClient(target: ChannelTarget): AgentClient {
  const channel = target.credentials ?? (target.tls ? agentChannelCredentials(target.tls) : credentials.createInsecure());
  return new AgentClient(target.address, channel, {
    ...DEFAULT_CHANNEL_OPTIONS,
    ...target.options,
    ...(target.token !== undefined ? { interceptors: [bearerTokenInterceptor(target.token)] } : {}),
  });
}
