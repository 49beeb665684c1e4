// lull-controller as a child process, with its config written into a scratch dir.
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { AgentCredentials } from "./agent-process.js";
import { ENTRY_POINTS } from "./paths.js";
import { startProcess, type LogLine, type ManagedProcess } from "./process.js";

/** The `command` stack driver: argv arrays, never a shell. */
export interface CommandDriver {
  type: "command";
  start: string[];
  stop: string[];
  status: string[];
  timeoutMs?: number;
}

export interface StartControllerOptions {
  /** Scratch dir: holds controller-<stack>.json and the marker dir (unless `markerDir`). */
  dir: string;
  guestId: string;
  stack: string;
  /**
   * A real agent: the AgentProcess itself (a token of this guest and stack is minted, its CA pinned),
   * or credentials already minted with `await agent.credentialsFor(guestId, stack)`.
   */
  agent?: AgentCredentials | { credentialsFor(guestId: string, stack?: string): Promise<AgentCredentials> };
  /** A plain address instead (a fake agent, or an agent with `listen.insecure` and `config.agent.token`). */
  agentAddress?: string;
  driver: CommandDriver | Record<string, unknown>;
  resume?: "early" | "end";
  markerDir?: string;
  resumeDeadlineMs?: number;
  pollIntervalMs?: number;
  leaseTtlMs?: number;
  /** More or overriding config keys. */
  config?: Record<string, unknown>;
  env?: NodeJS.ProcessEnv;
  echo?: boolean;
  /** Wait for the controller to register its stack with the agent; default true, 20 s. */
  waitRegistered?: boolean;
  readyTimeoutMs?: number;
}

/** The log line by which a controller says its stack is registered with the agent. */
export function isRegisteredLog(line: LogLine): boolean {
  return typeof line.msg === "string" && /\bregistered\b/i.test(line.msg) && !/unregistered/i.test(line.msg);
}

/** The controller's `stack resumed` log line: downtime and its parts, in ms. */
export interface ResumedLog {
  downtimeMs: number;
  stopMs: number;
  startMs: number;
  early: boolean;
  jobId?: string;
}

export function readResumedLog(line: LogLine): ResumedLog {
  const num = (k: string) => (typeof line[k] === "number" ? (line[k] as number) : NaN);
  return {
    downtimeMs: num("downtimeMs"),
    stopMs: num("stopMs"),
    startMs: num("startMs"),
    early: line.early === true,
    ...(typeof line.jobId === "string" ? { jobId: line.jobId } : {}),
  };
}

export interface ControllerProcess {
  readonly proc: ManagedProcess;
  readonly configPath: string;
  readonly config: Record<string, unknown>;
  stop(timeoutMs?: number): ReturnType<ManagedProcess["stop"]>;
  kill9(): ReturnType<ManagedProcess["kill9"]>;
}

export async function startController(options: StartControllerOptions): Promise<ControllerProcess> {
  if ((options.agent === undefined) === (options.agentAddress === undefined)) {
    throw new Error("startController: give agent (an AgentProcess or its credentialsFor(...)) or agentAddress, exactly one");
  }
  const markerDir = options.markerDir ?? join(options.dir, `markers-${options.stack}`);
  await mkdir(markerDir, { recursive: true });
  const config: Record<string, unknown> = {
    guestId: options.guestId,
    stack: options.stack,
    agent: options.agent === undefined ? { address: options.agentAddress } : "credentialsFor" in options.agent ? await options.agent.credentialsFor(options.guestId, options.stack) : options.agent,
    markerDir,
    resumeDeadlineMs: options.resumeDeadlineMs ?? 60_000,
    pollIntervalMs: options.pollIntervalMs ?? 500,
    leaseTtlMs: options.leaseTtlMs ?? 5_000,
    resume: options.resume ?? "early",
    driver: options.driver,
    ...options.config,
  };
  const configPath = join(options.dir, `controller-${options.stack}.json`);
  await writeFile(configPath, `${JSON.stringify(config, null, 2)}\n`);
  const proc = startProcess({
    name: `controller:${options.stack}`,
    args: [ENTRY_POINTS.controller, "--config", configPath],
    ...(options.env ? { env: options.env } : {}),
    ...(options.echo !== undefined ? { echo: options.echo } : {}),
  });
  if (options.waitRegistered !== false) {
    try {
      await proc.waitForLog(isRegisteredLog, options.readyTimeoutMs ?? 20_000);
    } catch (err) {
      await proc.kill9();
      throw err;
    }
  }
  return { proc, configPath, config, stop: (t) => proc.stop(t), kill9: () => proc.kill9() };
}
