export * from "./errors.js";
export * from "./logger.js";
export * from "./clock.js";
export * from "./phases.js";
export * from "./ids.js";
export * from "./config.js";
export * from "./grpc.js";
export * from "./tls.js";
