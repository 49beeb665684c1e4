// lull-agent as a child process: writes its config into a scratch dir, starts it on a free port
// (or a given one, so a restart keeps the address), waits for `agent listening`. Its network
// listener is TLS with tokens, as in production: `client()` talks to it as the local operator over
// its unix socket (in the scratch dir), and `credentialsFor(guest, stack)` mints a controller's
// token with `lull-agent token create` and returns it with the fingerprint to pin.
import { execFile } from "node:child_process";
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
  /** Run the agent inside this network namespace (`ip netns exec`, which execs: the pid is the agent's). */
  netns?: string;
}

/** What a controller needs to reach this agent: `config.agent` of lull-controller. */
export interface AgentCredentials {
  address: string;
  token: string;
  tls: { fingerprint: string };
}

interface Launched {
  proc: ManagedProcess;
  address: string;
  fingerprint: string | undefined;
}

export class AgentProcess {
  private current: ManagedProcess;
  private currentAddress: string;
  private currentFingerprint: string | undefined;
  private cachedClient: TestAgentClient | undefined;

  private constructor(
    readonly options: StartAgentOptions,
    readonly configPath: string,
    readonly config: Record<string, unknown>,
    launched: Launched,
  ) {
    this.current = launched.proc;
    this.currentAddress = launched.address;
    this.currentFingerprint = launched.fingerprint;
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
    const launched = await AgentProcess.launch(options, configPath, options.listen ?? "127.0.0.1:0");
    return new AgentProcess(options, configPath, config, launched);
  }

  private static async launch(options: StartAgentOptions, configPath: string, listen: string): Promise<Launched> {
    // LULL_AGENT_NODE_ARGS: node options for the agent alone, e.g. `--cpu-prof --cpu-prof-dir=DIR` to profile a benchmark's agent.
    const args = [...(process.env.LULL_AGENT_NODE_ARGS?.split(" ").filter(Boolean) ?? []), ENTRY_POINTS.agent, "--config", configPath, "--listen", listen, "--socket", AgentProcess.socketIn(options.dir)];
    const proc = startProcess({
      name: options.netns ? `agent@${options.netns}` : "agent",
      ...(options.netns ? { command: "ip", args: ["netns", "exec", options.netns, process.execPath, ...args] } : { args }),
      ...(options.env ? { env: options.env } : {}),
      ...(options.echo !== undefined ? { echo: options.echo } : {}),
    });
    try {
      const line = await proc.waitForLog((l) => l.msg === "agent listening", options.readyTimeoutMs ?? 20_000);
      return { proc, address: String(line.address), fingerprint: typeof line.fingerprint === "string" ? line.fingerprint : undefined };
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

  /** The local operator socket of an agent whose scratch dir is `dir`. */
  static socketIn(dir: string): string {
    return join(dir, "run", "agent.sock");
  }

  get socketPath(): string {
    return AgentProcess.socketIn(this.options.dir);
  }

  /** `unix:///…/agent.sock`: lullctl's `--socket` target as an address. */
  get socketAddress(): string {
    return `unix://${this.socketPath}`;
  }

  /** `sha256:…` of the agent's CA, as logged at start (undefined when `listen.insecure`). */
  get fingerprint(): string | undefined {
    return this.currentFingerprint;
  }

  /** A client of this agent as the local operator (one per process; closed by stop/kill9). */
  client(): TestAgentClient {
    this.cachedClient ??= connectTestClient(this.socketAddress);
    return this.cachedClient;
  }

  /** Runs `lull-agent token create … --json` against this agent's config; returns the token and its id. */
  async createToken(scope: { guest: string; stack?: string; ttl?: string } | { operator: true; ttl?: string }): Promise<{ id: string; token: string }> {
    const args = [ENTRY_POINTS.agent, "token", "create", "--config", this.configPath, "--json"];
    if ("operator" in scope) args.push("--operator");
    else args.push("--guest", scope.guest, ...(scope.stack !== undefined ? ["--stack", scope.stack] : []));
    if (scope.ttl !== undefined) args.push("--ttl", scope.ttl);
    const stdout = await new Promise<string>((resolve, reject) => {
      execFile(process.execPath, args, { timeout: 20_000 }, (err, out, stderr) => (err ? reject(new Error(`token create failed: ${stderr}`)) : resolve(out)));
    });
    const created = JSON.parse(stdout) as { id: string; token: string };
    return { id: created.id, token: created.token };
  }

  /** Runs `lull-agent token revoke <id>` against this agent's config. */
  async revokeToken(id: string): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      execFile(process.execPath, [ENTRY_POINTS.agent, "token", "revoke", id, "--config", this.configPath], { timeout: 20_000 }, (err, _out, stderr) =>
        err ? reject(new Error(`token revoke failed: ${stderr}`)) : resolve(),
      );
    });
  }

  /** A token of `guestId` (and `stack`) with this agent's address and fingerprint: a controller's `config.agent`. */
  async credentialsFor(guestId: string, stack?: string): Promise<AgentCredentials> {
    if (this.currentFingerprint === undefined) throw new Error("the agent runs without TLS (listen.insecure); no fingerprint to pin");
    const { token } = await this.createToken({ guest: guestId, ...(stack !== undefined ? { stack } : {}) });
    return { address: this.currentAddress, token, tls: { fingerprint: this.currentFingerprint } };
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
    const launched = await AgentProcess.launch(this.options, this.configPath, listen);
    this.current = launched.proc;
    this.currentAddress = launched.address;
    this.currentFingerprint = launched.fingerprint;
  }
}

/** Starts a lull-agent; see AgentProcess.start. */
export const startAgent = (options: StartAgentOptions) => AgentProcess.start(options);
