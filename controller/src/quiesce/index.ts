// Quiesce strategies (stop, pause, hooks) and the user's pre/post steps, sessions included.
export { Quiescer, type HeldStack, type QuiescerOptions, type ReleaseResult } from "./quiescer.js";
export { ClientSession, type SessionExit, type SessionSpec } from "./client-session.js";
export { postgresSession, type PostgresBackupStart, type PostgresBackupStop } from "./postgres.js";
export { summarizeOutcomes, withPostOutcome, POST_STEP_MAX, type StepOutcome } from "./outcome.js";
export {
  quiesceSchema,
  QUIESCE_STRATEGIES,
  type QuiesceConfig,
  type QuiesceStrategy,
  type PreStepConfig,
  type CommandStepConfig,
  type SessionStepConfig,
  type PostgresStepConfig,
} from "./schema.js";
