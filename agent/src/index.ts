// Public surface of @lull/agent for other packages (tests, tools): start the daemon in-process,
// and read or seed its database.
export { startAgent, nativeEngineFor, DATABASE_FILE, type RunningAgent, type StartAgentOptions } from "./agent.js";
export { agentConfigSchema, loadAgentConfig, snapshotKind, type AgentConfig, type GuestConfig, type VolumeConfig } from "./config.js";
export type { BackupEngine, EngineHooks, EngineResult, EngineRun } from "./engines/engine.js";
export { JobStore } from "./jobs/store.js";
export { MIGRATIONS, migrate } from "./ledger/migrations.js";
export { newJobRecord, toApiJob, type JobRecord } from "./jobs/job.js";
export { transition, type JobEvent } from "./jobs/machine.js";
export type { EngineFor } from "./jobs/runner.js";
export { recoverAtStart, type RecoveryReport } from "./recovery.js";
export { AgentMetrics } from "./metrics/agent-metrics.js";
