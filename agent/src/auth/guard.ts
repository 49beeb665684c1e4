// The one place every call passes before its handler: authenticate (who), refuse undecodable
// requests, authorize against the RPC's scope rule (rules.ts), apply the per-principal limits.
// `guardService` wraps each method of a service definition generically, so an RPC added to the
// proto is guarded by construction (operator-only until it gets a rule).
import { Metadata as MetadataClass } from "@grpc/grpc-js";
import type {
  Metadata,
  ServerUnaryCall,
  ServerWritableStream,
  ServiceDefinition,
  ServiceError,
  UntypedHandleCall,
  UntypedServiceImplementation,
  handleServerStreamingCall,
  handleUnaryCall,
  sendUnaryData,
} from "@grpc/grpc-js";
import { AUTHORIZATION_KEY, LullError, asLullError, toServiceError, type Clock, type Logger } from "@lull/shared";
import { principalFields, type Principal } from "./principal.js";
import type { CallLimiter } from "./rate-limit.js";
import { OPERATOR_ONLY, SCOPE_RULES, authorize, type Request, type RuleContext, type ScopeRule } from "./rules.js";
import { isMalformed } from "./safe-decode.js";
import type { TokenStore } from "./token-store.js";

export type Authenticate = (metadata: Metadata) => Principal;

export interface GuardOptions {
  /** The definition the server registers (see withSafeDecoding). */
  definition: ServiceDefinition;
  implementation: UntypedServiceImplementation;
  authenticate: Authenticate;
  /** Which listener this guard serves, for logs. */
  listener: "network" | "socket" | "cluster";
  rules?: Readonly<Record<string, ScopeRule>>;
  context?: RuleContext;
  limiter?: CallLimiter;
  log: Logger;
}

// Who made each admitted call, for the few handlers that decide by the caller (a node may only
// release the group members it asked to join): keyed by the call object, gone with it.
const callers = new WeakMap<object, Principal>();

/** The principal the guard admitted `call` for; undefined for a call that did not pass a guard. */
export function principalOf(call: object): Principal | undefined {
  return callers.get(call);
}

const BEARER = /^Bearer ([\x21-\x7e]{1,256})$/;

/** Authentication on the network listener: exactly one `authorization: Bearer <token>`. */
export function bearerAuthenticator(tokens: TokenStore, clock: Clock): Authenticate {
  return (metadata) => {
    const values = metadata.get(AUTHORIZATION_KEY);
    if (values.length === 0) {
      throw new LullError("LULL_E_UNAUTHENTICATED", "this listener needs a token: metadata `authorization: Bearer <token>`");
    }
    const value = values.length === 1 && typeof values[0] === "string" ? BEARER.exec(values[0]) : null;
    if (!value) throw new LullError("LULL_E_UNAUTHENTICATED", "the authorization metadata is not one `Bearer <token>`");
    return tokens.authenticate(value[1] as string, clock.now());
  };
}

/** Wraps every method of `definition`; methods the implementation lacks are left out. */
export function guardService(o: GuardOptions): UntypedServiceImplementation {
  const rules = o.rules ?? SCOPE_RULES;
  const context = o.context ?? {};
  const log = o.log.child({ component: "auth", listener: o.listener });
  const guarded: UntypedServiceImplementation = {};

  for (const [name, method] of Object.entries(o.definition)) {
    const inner = o.implementation[name];
    if (!inner) continue;
    const rule = rules[name] ?? OPERATOR_ONLY;
    if (!rules[name]) log.warn({ method: name }, "RPC has no scope rule; only operators may call it");
    const rpc = method.path.slice(method.path.lastIndexOf("/") + 1);

    /** Who is calling, if they may; throws a LullError naming why not (`who` keeps the principal for the log). */
    const admit = (call: { metadata: Metadata; request: unknown }, who: { principal?: Principal }): Principal => {
      const principal = o.authenticate(call.metadata);
      who.principal = principal;
      if (isMalformed(call.request)) {
        throw new LullError("LULL_E_INVALID_ARGUMENT", `the request is not a valid ${rpc} message`);
      }
      authorize(rpc, rule, principal, call.request as Request, context);
      o.limiter?.admit(name, principal);
      callers.set(call, principal);
      return principal;
    };
    const refused = (err: unknown, call: { getPeer(): string }, principal?: Principal): ServiceError => {
      const e = asLullError(err);
      const fields = { method: rpc, code: e.code, err: e.message, peer: call.getPeer(), ...(principal ? principalFields(principal) : {}) };
      if (e.code === "LULL_E_INVALID_ARGUMENT") log.info(fields, "call failed");
      else log.warn(fields, "call refused");
      return toServiceError(e) as ServiceError;
    };

    if (!method.requestStream && !method.responseStream) {
      const handler = inner as handleUnaryCall<unknown, unknown>;
      const filter = rule.kind === "operator" ? undefined : rule.filter;
      guarded[name] = ((call: ServerUnaryCall<unknown, unknown>, callback: sendUnaryData<unknown>) => {
        const who: { principal?: Principal } = {};
        let principal: Principal;
        try {
          principal = admit(call, who);
        } catch (err) {
          callback(refused(err, call, who.principal), null);
          return;
        }
        if (!filter || principal.kind !== "guest") return handler(call, callback);
        const p = principal;
        handler(call, (err, value, ...rest) => callback(err, err ? value : filter(value, p), ...rest));
      }) as UntypedHandleCall;
    } else if (!method.requestStream && method.responseStream) {
      const handler = inner as handleServerStreamingCall<unknown, unknown>;
      guarded[name] = ((call: ServerWritableStream<unknown, unknown>) => {
        const who: { principal?: Principal } = {};
        let release: () => void;
        try {
          const principal = admit(call, who);
          release = o.limiter?.openStream(principal) ?? (() => undefined);
        } catch (err) {
          call.emit("error", refused(err, call, who.principal));
          return;
        }
        for (const event of ["finish", "close", "cancelled"]) call.once(event, release);
        // Headers at once: the caller knows its stream was admitted before any event exists
        // (a refused one gets its status instead, with no headers). A watcher that (re)connects
        // while nothing happens thus knows its stream is up at once (the controller stops polling).
        call.sendMetadata(new MetadataClass());
        handler(call);
      }) as UntypedHandleCall;
    } else {
      // No client-streaming RPCs exist; refuse them rather than pass them through unguarded.
      log.warn({ method: name }, "client-streaming RPC is not supported by the guard; refused");
    }
  }
  return guarded;
}
