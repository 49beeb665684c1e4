// A Proxmox node on this machine for end-to-end tests of the vzdump engine: the fake Proxmox
// toolbox (test/fakes/pve, seeded in a temp dir), the real lull-agent with vzdump guests and the
// fakes first on its PATH, and per stack a real lull-controller driving test/fixtures/light-stack.sh
// (a writer process with a pid file). vzdump runs the agent's installed hook launcher, which talks
// to the agent's hook server over its unix socket, exactly as on a real node.
import { execFile, spawn } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { FakePve } from "../../fakes/pve/lib/seed.js";
import { startAgent, type AgentProcess } from "../support/agent-process.js";
import { startController, type ControllerProcess } from "../support/controller-process.js";
import { makeTempDir, removeDir } from "../support/temp.js";

export { FakePve };

export const LIGHT_STACK = fileURLToPath(new URL("../../fixtures/light-stack.sh", import.meta.url));

export interface PveGuestSpec {
  id: string;
  mode?: "snapshot" | "suspend" | "stop";
  policy?: "fail" | "crash-consistent";
  quiesceTimeoutMs?: number;
}

export interface PveStackSpec {
  guestId: string;
  name: string;
  /** Replaces the stop command (e.g. one that fails, so the controller refuses). */
  stop?: string[];
}

export interface PveSiteOptions {
  guests: PveGuestSpec[];
  /** Seeds the fake node (containers, VMs, faults). */
  seed(pve: FakePve, dir: string): void;
  stacks?: PveStackSpec[];
  /** Merged into the agent's `pve` key. */
  pve?: Record<string, unknown>;
  /** Merged into the agent's `pve.vzdump` key. */
  vzdump?: Record<string, unknown>;
  /** Merged into the agent's config. */
  agentConfig?: Record<string, unknown>;
  /** More environment for the agent (a failpoint). */
  agentEnv?: Record<string, string>;
  echo?: boolean;
}

export interface SiteStackHandle {
  guestId: string;
  name: string;
  dataDir: string;
  controller: ControllerProcess;
}

export interface VzdumpResult {
  exitCode: number | null;
  stdout: string;
  stderr: string;
}

export class PveSite {
  readonly stacks = new Map<string, SiteStackHandle>();

  private constructor(
    readonly dir: string,
    readonly pve: FakePve,
    readonly agent: AgentProcess,
    /** The hook launcher the agent installs (pve.hook.scriptPath). */
    readonly hookScriptPath: string,
    readonly hookSocketPath: string,
  ) {}

  static async start(options: PveSiteOptions): Promise<PveSite> {
    const dir = await makeTempDir("lull-pve-e2e-");
    try {
      const pve = FakePve.createStandard(dir);
      options.seed(pve, dir);
      await mkdir(join(dir, "tmp"), { recursive: true });
      const hookScriptPath = join(dir, "hook", "vzdump-hook.mjs");
      const hookSocketPath = join(dir, "run", "hook.sock");
      const agent = await startAgent({
        dir,
        guests: [],
        config: {
          node: pve.node(),
          guests: options.guests.map((g) => ({ engine: "vzdump", ...g })),
          quiesce: { timeoutMs: 20_000, policy: "fail" },
          shutdownGraceMs: 15_000,
          pve: {
            storageCfgPath: pve.storageCfgPath(),
            commandTimeoutMs: 20_000,
            mountDir: join(dir, "mnt"),
            vzdump: {
              storage: "local",
              pidFile: pve.state.path("run", "vzdump.pid"),
              lockFile: pve.state.path("run", "vzdump.lock"),
              tmpDir: join(dir, "tmp"),
              progressIntervalMs: 100,
              stopGraceMs: 10_000,
              lockwaitMinutes: 1,
              ...options.vzdump,
            },
            hook: { socketPath: hookSocketPath, scriptPath: hookScriptPath, preStopTimeoutMs: 120_000, replyTimeoutMs: 5_000, vzdumpConfPath: pve.state.path("etc", "vzdump.conf") },
            ...options.pve,
          },
          ...options.agentConfig,
        },
        env: pve.env({ ...process.env, ...options.agentEnv }),
        ...(options.echo !== undefined ? { echo: options.echo } : {}),
      });
      const site = new PveSite(dir, pve, agent, hookScriptPath, hookSocketPath);
      try {
        for (const spec of options.stacks ?? []) await site.addStack(spec, options.echo);
      } catch (err) {
        await site.teardown();
        throw err;
      }
      return site;
    } catch (err) {
      await removeDir(dir);
      throw err;
    }
  }

  private async addStack(spec: PveStackSpec, echo?: boolean): Promise<void> {
    const dataDir = join(this.dir, "stacks", spec.name);
    await mkdir(dataDir, { recursive: true });
    await lightStack("start", dataDir);
    const controller = await startController({
      dir: this.dir,
      guestId: spec.guestId,
      stack: spec.name,
      agent: this.agent,
      resume: "early",
      resumeDeadlineMs: 90_000,
      pollIntervalMs: 300,
      driver: {
        type: "command",
        start: [LIGHT_STACK, "start", dataDir],
        stop: spec.stop ?? [LIGHT_STACK, "stop", dataDir],
        status: [LIGHT_STACK, "status", dataDir],
        timeoutMs: 15_000,
      },
      ...(echo !== undefined ? { echo } : {}),
    });
    this.stacks.set(spec.name, { guestId: spec.guestId, name: spec.name, dataDir, controller });
  }

  stack(name: string): SiteStackHandle {
    const s = this.stacks.get(name);
    if (!s) throw new Error(`no stack ${name}`);
    return s;
  }

  /** Dump dir of storage `local`. */
  get dumpDir(): string {
    return join(this.dir, "vz", "dump");
  }

  dumpFiles(): string[] {
    return existsSync(this.dumpDir) ? readdirSync(this.dumpDir).sort() : [];
  }

  /** Runs the fake vzdump as Proxmox would (pvescheduler, `vzdump` by hand), with `args`. */
  runVzdump(args: readonly string[], timeoutMs = 60_000): { pid: number | undefined; result: Promise<VzdumpResult> } {
    const child = spawn(join(this.pve.binDir, "vzdump"), [...args], { env: this.pve.env(), stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
    child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    const result = new Promise<VzdumpResult>((resolve) => {
      child.on("close", (code) => {
        clearTimeout(timer);
        resolve({ exitCode: code, stdout, stderr });
      });
    });
    return { pid: child.pid, result };
  }

  async teardown(): Promise<void> {
    for (const s of this.stacks.values()) {
      await s.controller.stop().catch(() => undefined);
      await lightStack("stop", s.dataDir).catch(() => undefined);
    }
    await this.agent.stop().catch(() => undefined);
    await removeDir(this.dir);
  }
}

/** light-stack.sh start|stop|status <dataDir>; resolves with the exit code. */
export function lightStack(verb: "start" | "stop" | "status", dataDir: string): Promise<number> {
  return new Promise((resolve) => {
    execFile(LIGHT_STACK, [verb, dataDir], { timeout: 15_000 }, (err) => {
      resolve(err ? (typeof (err as { code?: unknown }).code === "number" ? ((err as { code: number }).code) : 1) : 0);
    });
  });
}

/** Is the stack's writer running (light-stack.sh status)? */
export async function stackRunning(dataDir: string): Promise<boolean> {
  return (await lightStack("status", dataDir)) === 0;
}
