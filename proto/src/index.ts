// Generated API of lull.v1 (ts-proto, grpc-js services) and where its .proto files live.
import { fileURLToPath } from "node:url";

export * from "./gen/lull/v1/agent.js";
export { Timestamp } from "./gen/google/protobuf/timestamp.js";

/** Directory holding `lull/v1/agent.proto`, for reflection (proto-loader reads it at run time). */
export const protoDir = fileURLToPath(new URL("..", import.meta.url));
export const protoFile = "lull/v1/agent.proto";
