// Test doubles for the ports in @lull/shared; imported as @lull/shared/testing, never by production code.
export * from "./recording-runner.js";
export * from "./rejection.js";
export * from "./test-cluster.js";
