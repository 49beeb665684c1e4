// Stack driver for a Docker Compose v2 project:
//   docker compose --project-name P [--file F]... stop | start | pause | unpause | ps --all --format json
// The stack is `running` when every service's containers run, `stopped` when none runs or is
// paused, `paused` when every container is paused.
// `ps --format json` prints one JSON object per line (compose >= 2.21) or one JSON array (older);
// both are accepted.
import { LullError, createExecaRunner, type CommandRunner } from "@lull/shared";
import type { ComposeDriverConfig } from "../config.js";
import type { StackDriver, StackStatus } from "./driver.js";
import { runChecked } from "./checked-command.js";
import { whyNotExecutable } from "./command.js";

export interface ComposeContainer {
  Name: string;
  Service: string;
  State: string;
  Status?: string;
  Project?: string;
}

/** Parses the output of `docker compose ps --format json` (NDJSON or a JSON array). */
export function parseComposePs(stdout: string): ComposeContainer[] {
  const text = stdout.trim();
  if (text === "") return [];
  const values: unknown[] = [];
  if (text.startsWith("[")) {
    values.push(...(JSON.parse(text) as unknown[]));
  } else {
    for (const line of text.split("\n")) if (line.trim() !== "") values.push(JSON.parse(line));
  }
  return values.map((v) => {
    const c = v as Partial<ComposeContainer>;
    if (typeof c.Service !== "string" || typeof c.State !== "string") {
      throw new LullError("LULL_E_COMMAND_FAILED", `unexpected docker compose ps output: ${JSON.stringify(v).slice(0, 200)}`);
    }
    return { Name: String(c.Name ?? ""), Service: c.Service, State: c.State, Status: String(c.Status ?? ""), Project: String(c.Project ?? "") };
  });
}

/**
 * `running` when every container runs, `paused` when every one is paused, `stopped` when none runs
 * or is paused (or there are none), else `partial`.
 */
export function composeStatus(containers: readonly ComposeContainer[]): StackStatus {
  const running = containers.filter((c) => c.State === "running").length;
  const paused = containers.filter((c) => c.State === "paused").length;
  if (running === 0 && paused === 0) return "stopped";
  if (running === containers.length) return "running";
  return paused === containers.length ? "paused" : "partial";
}

export function createComposeDriver(config: Pick<ComposeDriverConfig, "project" | "files" | "docker" | "timeoutMs" | "verifyTimeoutMs">,
  runner: CommandRunner = createExecaRunner(),
): StackDriver {
  const base = [config.docker, "compose", "--project-name", config.project, ...config.files.flatMap((f) => ["--file", f])];

  const run = async (
    args: readonly string[],
    code: "LULL_E_STACK_STOP_FAILED" | "LULL_E_STACK_START_FAILED" | "LULL_E_COMMAND_FAILED",
    signal?: AbortSignal,
  ): Promise<string> => {
    return runChecked(runner, [...base, ...args], { timeoutMs: config.timeoutMs, signal }, code);
  };

  const missing = (): string[] => {
    const why = whyNotExecutable(config.docker);
    return why === undefined ? [] : [`driver.docker cannot run: ${why}`];
  };

  return {
    kind: "compose",
    verifyTimeoutMs: config.verifyTimeoutMs,
    stop: async (signal) => {
      await run(["stop"], "LULL_E_STACK_STOP_FAILED", signal);
    },
    start: async (signal) => {
      await run(["start"], "LULL_E_STACK_START_FAILED", signal);
    },
    async status(signal) {
      const stdout = await run(["ps", "--all", "--format", "json"], "LULL_E_COMMAND_FAILED", signal);
      return composeStatus(parseComposePs(stdout));
    },
    reportsPaused: true,
    pause: async (signal) => {
      await run(["pause"], "LULL_E_STACK_STOP_FAILED", signal);
    },
    unpause: async (signal) => {
      await run(["unpause"], "LULL_E_STACK_START_FAILED", signal);
    },
    missing,
    preflight: () => Promise.resolve(missing()),
  };
}
