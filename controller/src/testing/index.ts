// Test helpers of the controller (`@lull/controller/testing`): an in-process fake agent, a real
// process as a stack, log capture, a controller as a child process, and a wired-up harness.
export { FakeAgent, type FakeCall, type SeedJob } from "./fake-agent.js";
export { ProcessStack, processStackCli, type StackEvent } from "./process-stack.js";
export { LogCapture, type LogLine } from "./log-capture.js";
export { ChildController, controllerMain, type ChildLog } from "./child-controller.js";
export { Harness, type HarnessOptions } from "./harness.js";
export { rejectsWith } from "./rejects-with.js";
