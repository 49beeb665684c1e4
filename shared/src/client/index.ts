export * from "./agent-api.js";
export * from "./event-stream.js";
export * from "./retry.js";
