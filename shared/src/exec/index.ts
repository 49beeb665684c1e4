export * from "./argv.js";
export * from "./command-runner.js";
export * from "./launcher.js";
export * from "./execa.js";
