export * from "./members.js";
export * from "./credential.js";
export * from "./node-assertion.js";
export * from "./peers.js";
