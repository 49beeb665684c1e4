// The process harness shared by the demo, the benchmark and the end-to-end and crash tests.
// See README.md next to this file for a walkthrough.
export * from "./paths.js";
export * from "./temp.js";
export * from "./process.js";
export * from "./agent-client.js";
export * from "./agent-process.js";
export * from "./controller-process.js";
export * from "./btrfs.js";
export * from "./seed-data.js";
export * from "./stack-ledger.js";
export * from "./leftovers.js";
export * from "./event-follower.js";
export * from "./site.js";
export * from "./convergence.js";
export * from "./require.js";
export { lullctlSummary } from "./json-lines.js";
export * from "./lullctl-json.js";
