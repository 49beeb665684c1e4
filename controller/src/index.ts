// @lull/controller: the controller as a library (the binary is ./main.ts).
export { Controller, type ControllerParts } from "./controller.js";
export {
  controllerConfigSchema,
  loadControllerConfig,
  defaultControllerId,
  FAILPOINTS,
  type ControllerConfig,
  type ControllerEnv,
  type ControllerFlags,
  type DriverConfig,
  type CommandDriverConfig,
  type ComposeDriverConfig,
  type Failpoint,
} from "./config.js";
export { createFileMarkerStore, type Marker, type MarkerRead, type MarkerStore } from "./marker-store.js";
export { createStackDriver, startAndVerify, stopAndVerify, type StackDriver, type StackStatus } from "./stacks/index.js";
export { createCommandDriver } from "./stacks/command.js";
export { createComposeDriver, parseComposePs, composeStatus } from "./stacks/compose.js";
export { decideForMarker, decideForJob, snapshotExists, type ResumeCause } from "./decide.js";
export { AgentLink, type AgentApi, type ResumeReport } from "./agent-link.js";
export { recover, type RecoverOutcome } from "./recover.js";
export { ControllerMetrics } from "./metrics.js";
