// Test helpers of the controller (`@lull/controller/testing`): the real agent with a cued engine and
// injectable faults, a real process as a stack, log capture, a controller as a child process, and a
// wired-up harness.
export { ControllerTestAgent, GUEST, type Failure, type SeedJob } from "./agent.js";
export { AgentFaults, type AgentCall } from "./faulty-api.js";
export { ProcessStack, processStackCli, type StackEvent } from "./process-stack.js";
export { LogCapture, type LogLine } from "./log-capture.js";
export { ChildController, controllerMain, type ChildLog } from "./child-controller.js";
export { Harness, type HarnessOptions } from "./harness.js";
export { rejectsWith } from "./rejects-with.js";
