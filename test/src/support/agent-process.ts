// lull-agent as a child process: writes its config into a scratch dir, starts it on a free port
// (or a given one, so a restart keeps the address), waits for `agent listening`.
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { connectTestClient, type TestAgentClient } from "./agent-client.js";
import { ENTRY_POINTS } from "./paths.js";
import { startProcess, type ExitStatus, type ManagedProcess } from "./process.js";

export interface TestVolume {
  name: string;
  path: string;
}

/** A guest of the agent's config (agent/src/config.ts): `dir` or `btrfs` here. */
export interface TestGuest {
  id: string;
  driver: "dir" | "btrfs" | "lvmthin" | "zfs";
  snapshot?: "snapshot" | "copy" | "none";
  volumes: TestVolume[];
  quiesceTimeoutMs?: number;
  policy?: "fail" | "crash-consistent";
}

export interface StartAgentOptions {
  /** Scratch dir: holds agent.json and, unless `config` says otherwise, data/, archives/, staging/. */
  dir: string;
  guests: TestGuest[];
  /** More or overriding config keys (`quiesce`, `leaseTtlMs`, `prefix`, `node`, ...). */
  config?: Record<string, unknown>;
  /** Default `127.0.0.1:0`. */
  listen?: string;
  env?: NodeJS.ProcessEnv;
  echo?: boolean;
  /** How long to wait for `agent listening`; default 20 s. */
  readyTimeoutMs?: number;
}

export class AgentProcess {
  private current: ManagedProcess;
  private currentAddress: string;
  private cachedClient: TestAgentClient | undefined;

  private constructor(
    readonly options: StartAgentOptions,
    readonly configPath: string,
    readonly config: Record<string, unknown>,
    proc: ManagedProcess,
    address: string,
  ) {
    this.current = proc;
    this.currentAddress = address;
  }

  /** Writes the config, starts the agent and waits until it listens. */
  static async start(options: StartAgentOptions): Promise<AgentProcess> {
    const config: Record<string, unknown> = {
      node: "test-node",
      dataDir: join(options.dir, "data"),
      archiveDir: join(options.dir, "archives"),
      stagingDir: join(options.dir, "staging"),
      prefix: "lull-",
      guests: options.guests,
      ...options.config,
    };
    for (const key of ["dataDir", "archiveDir", "stagingDir"] as const) await mkdir(String(config[key]), { recursive: true });
    const configPath = join(options.dir, "agent.json");
    await writeFile(configPath, `${JSON.stringify(config, null, 2)}\n`);
    const { proc, address } = await AgentProcess.launch(options, configPath, options.listen ?? "127.0.0.1:0");
    return new AgentProcess(options, configPath, config, proc, address);
  }

  private static async launch(options: StartAgentOptions, configPath: string, listen: string) {
    const proc = startProcess({
      name: "agent",
      args: [ENTRY_POINTS.agent, "--config", configPath, "--listen", listen],
      ...(options.env ? { env: options.env } : {}),
      ...(options.echo !== undefined ? { echo: options.echo } : {}),
    });
    try {
      const line = await proc.waitForLog((l) => l.msg === "agent listening", options.readyTimeoutMs ?? 20_000);
      return { proc, address: String(line.address) };
    } catch (err) {
      await proc.kill9();
      throw err;
    }
  }

  get proc(): ManagedProcess {
    return this.current;
  }

  /** `127.0.0.1:<port>` the agent listens on. */
  get address(): string {
    return this.currentAddress;
  }

  get port(): number {
    return Number(this.currentAddress.slice(this.currentAddress.lastIndexOf(":") + 1));
  }

  get archiveDir(): string {
    return String(this.config.archiveDir);
  }

  /** A client of this agent (one per process; closed by stop/kill9). */
  client(): TestAgentClient {
    this.cachedClient ??= connectTestClient(this.currentAddress);
    return this.cachedClient;
  }

  private dropClient(): void {
    this.cachedClient?.close();
    this.cachedClient = undefined;
  }

  /** SIGTERM and wait (SIGKILL after `timeoutMs`). */
  async stop(timeoutMs = 15_000): Promise<ExitStatus> {
    this.dropClient();
    return this.current.stop(timeoutMs);
  }

  async kill9(): Promise<ExitStatus> {
    this.dropClient();
    return this.current.kill9();
  }

  /**
   * Starts the agent again with the same config and, by default, the same port. `env` replaces
   * the environment for this and later restarts (e.g. to drop a failpoint).
   */
  async restart(options: { samePort?: boolean; env?: NodeJS.ProcessEnv } = {}): Promise<void> {
    if (!this.current.exitStatus) await this.stop();
    if (options.env) this.options.env = options.env;
    const listen = options.samePort === false ? (this.options.listen ?? "127.0.0.1:0") : this.currentAddress;
    const { proc, address } = await AgentProcess.launch(this.options, this.configPath, listen);
    this.current = proc;
    this.currentAddress = address;
  }
}

/** Starts a lull-agent; see AgentProcess.start. */
export const startAgent = (options: StartAgentOptions) => AgentProcess.start(options);
