// The stack driver named by the configuration.
import type { DriverConfig } from "../config.js";
import { createCommandDriver } from "./command.js";
import { createComposeDriver } from "./compose.js";
import type { StackDriver } from "./driver.js";

export type { StackDriver, StackStatus } from "./driver.js";
export { startAndVerify, stopAndVerify } from "./driver.js";

export function createStackDriver(config: DriverConfig): StackDriver {
  switch (config.type) {
    case "command":
      return createCommandDriver(config);
    case "compose":
      return createComposeDriver(config);
  }
}
