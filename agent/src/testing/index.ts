// @lull/agent/testing: the real agent in-process with an injected engine, for the component
// tests of its clients (lullctl, the controller) — so no package fakes the agent's API.
export * from "./agent-harness.js";
export { FakeEngine, type FakeEngineOptions } from "./fake-engine.js";
export { waitUntil } from "./wait.js";
export { TimelineEngine, type TimelineEngineOptions } from "../groups/testing/timeline-engine.js";
export { groupApi, waitForGroup, type GroupApi } from "../groups/testing/group-api.js";
export { CuedEngine } from "./cued-engine.js";
export { SocketRelay } from "./socket-relay.js";
export type { BackupEngine, EngineResult, EngineRun } from "../engines/engine.js";
export type { GuestConfig } from "../config.js";
export { TokenStore } from "../auth/token-store.js";
export { History } from "../retention/testing/seed-history.js";
export { writeArchive, type ArchiveRequest } from "../archive/tar-zst.js";
export { measureTrees } from "../archive/measure.js";
export { createProgressReporter } from "../archive/progress.js";
