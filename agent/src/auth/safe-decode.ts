// Requests that are not valid protobuf of their type (wrong wire types that ts-proto cannot skip,
// truncated bytes, a uint64 beyond 2^53) make grpc-js answer INTERNAL "Error deserializing
// request". The agent's services are registered with deserializers that never throw: a message
// that does not decode becomes a marker object, which the guard answers with INVALID_ARGUMENT.
import type { ServiceDefinition } from "@grpc/grpc-js";

export const MALFORMED = Symbol("lull.malformedRequest");

export interface MalformedRequest {
  [MALFORMED]: string;
}

export function isMalformed(request: unknown): request is MalformedRequest {
  return typeof request === "object" && request !== null && MALFORMED in request;
}

/** A copy of `definition` whose request deserializers return a MalformedRequest instead of throwing. */
export function withSafeDecoding<T extends ServiceDefinition>(definition: T): T {
  const out: Record<string, unknown> = {};
  for (const [name, method] of Object.entries(definition)) {
    const decode = method.requestDeserialize;
    out[name] = {
      ...method,
      requestDeserialize: (bytes: Buffer): unknown => {
        try {
          return decode(bytes);
        } catch (err) {
          const reason = err instanceof Error ? err.message.slice(0, 200) : "undecodable";
          return { [MALFORMED]: reason } satisfies MalformedRequest;
        }
      },
    };
  }
  return out as T;
}
