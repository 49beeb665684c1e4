// A whole Lull site on this machine, for end-to-end and crash tests: one real lull-agent with
// guests on `dir` (copy or none) or a loop-mounted btrfs, and per stack a running demo app and its
// real lull-controller (command driver through the counting ledger). Restarts keep addresses and
// paths, so a test can kill -9 any daemon and start it again; `teardown()` stops and removes
// everything, also after a failure.
import { existsSync, readFileSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { delimiter, join } from "node:path";
import { execa } from "execa";
import { startAgent, type AgentProcess } from "./agent-process.js";
import { loopBtrfsUnavailable, mountLoopBtrfs, type LoopBtrfs } from "./btrfs.js";
import { startController, type ControllerProcess } from "./controller-process.js";
import { SCRATCH_ENV, findLeftovers, processesWithEnv } from "./leftovers.js";
import { killPid9 } from "./process.js";
import { installSlowCommand } from "./slow-command.js";
import { writeSeedData } from "./seed-data.js";
import { appCtl, appStatus, countedAppDriver, readLedger, type AppStatus, type LedgerEntry } from "./stack-ledger.js";
import { makeTempDir, removeDir, waitFor } from "./temp.js";

export type GuestStorage = "dir-copy" | "dir-none" | "btrfs";

export interface SiteStackSpec {
  name: string;
  resume?: "early" | "end";
  stopDelayMs?: number;
}

export interface SiteGuestSpec {
  id: string;
  storage: GuestStorage;
  stacks: ReadonlyArray<string | SiteStackSpec>;
  /** Bulk data in the first stack's volume (`attachments/`), so archiving takes a while. */
  seedBytes?: number;
  quiesceTimeoutMs?: number;
}

export interface SiteOptions {
  guests: SiteGuestSpec[];
  /** Merged into the agent's config (`quiesce`, `zstdLevel`, `leaseTtlMs`, ...). */
  agentConfig?: Record<string, unknown>;
  /** Put archiveDir on a tmpfs of this size (a disk that fills up). */
  archiveTmpfsBytes?: number;
  /** Controller settings; the lease (default 15 s) outlives an agent restart, so stacks stay registered. */
  controller?: { resumeDeadlineMs?: number; resumeLeadMs?: number; pollIntervalMs?: number; leaseTtlMs?: number; callTimeoutMs?: number };
  btrfsSizeBytes?: number;
  /** Commands the agent runs that start late (shims first on its PATH): e.g. zstd, for a slow archive. */
  slowAgentCommands?: Array<{ command: string; delayMs: number; whenArgsStartWith?: string[] }>;
  /** The agent's first run pauses at this failpoint (`pause-in:<phase>`); `restartAgent()` drops it. */
  agentFailpoint?: string;
  echo?: boolean;
}

export class SiteStack {
  controller: ControllerProcess | undefined;
  constructor(
    readonly guestId: string,
    readonly name: string,
    readonly dataDir: string,
    readonly markerDir: string,
    readonly ledger: string,
    readonly resume: "early" | "end",
    readonly stopDelayMs: number,
  ) {}

  get key(): string {
    return `${this.guestId}/${this.name}`;
  }

  get markerPath(): string {
    return join(this.markerDir, `${this.name}.marker.json`);
  }

  markerPresent(): boolean {
    return existsSync(this.markerPath);
  }

  ledgerEntries(): LedgerEntry[] {
    return readLedger(this.ledger);
  }

  status(): Promise<AppStatus> {
    return appStatus(this.dataDir);
  }
}

const FAILPOINT_VARS = ["LULL_AGENT_FAILPOINT", "LULL_CONTROLLER_FAILPOINT"] as const;

function cleanEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const v of FAILPOINT_VARS) delete env[v];
  return { ...env, ...extra };
}

export class Site {
  readonly stacks: SiteStack[] = [];
  agent!: AgentProcess;
  btrfs: LoopBtrfs | undefined;
  private tmpfs: string | undefined;
  private shimDir: string | undefined;
  private readonly snapshotParents: string[] = [];

  private constructor(
    readonly scratch: string,
    readonly options: SiteOptions,
  ) {
    // LULL_TEST_ECHO=1 prints every daemon's output (for watching a failing test).
    if (options.echo === undefined && process.env.LULL_TEST_ECHO === "1") this.options = { ...options, echo: true };
  }

  /** Lays out the guests, starts the agent, the apps and their controllers. */
  static async start(options: SiteOptions): Promise<Site> {
    const site = new Site(await makeTempDir("lull-site-"), options);
    try {
      await site.build();
    } catch (err) {
      await site.teardown().catch(() => undefined);
      throw err;
    }
    return site;
  }

  get prefix(): string {
    return String(this.agent.config.prefix ?? "lull-");
  }

  get stagingDir(): string {
    return String(this.agent.config.stagingDir);
  }

  get archiveDir(): string {
    return this.agent.archiveDir;
  }

  stack(guestId: string, name?: string): SiteStack {
    const found = this.stacks.find((s) => s.guestId === guestId && (name === undefined || s.name === name));
    if (!found) throw new Error(`no stack ${guestId}/${name ?? "*"} in this site`);
    return found;
  }

  stacksOf(guestId: string): SiteStack[] {
    return this.stacks.filter((s) => s.guestId === guestId);
  }

  /** The agent's environment: marked so its descendants can be found; `failpoint` = `pause-in:<phase>`. */
  agentEnv(failpoint?: string): NodeJS.ProcessEnv {
    const path = this.shimDir ? { PATH: [this.shimDir, process.env.PATH ?? ""].join(delimiter) } : {};
    return cleanEnv({ [SCRATCH_ENV]: this.scratch, ...path, ...(failpoint ? { LULL_AGENT_FAILPOINT: failpoint } : {}) });
  }

  /** Restarts the agent on the same port (after a kill -9 or a stop), with or without a failpoint. */
  async restartAgent(failpoint?: string): Promise<void> {
    const frozen = (s: SiteStack) => s.controller!.proc.logs.some((l) => l.msg === "paused at failpoint");
    const live = this.stacks.filter((s) => s.controller && !s.controller.proc.exitStatus && !frozen(s));
    const marks = live.map((s) => s.controller!.proc.mark());
    await this.agent.restart({ env: this.agentEnv(failpoint) });
    await this.agentAnswers(10_000);
    // A controller whose lease renewal failed while the agent was away may have lost its lease:
    // wait until it registered again, so a backup started next finds its stack.
    await Promise.all(
      live.map(async (s, i) => {
        const proc = s.controller!.proc;
        const failed = proc.logs.slice(marks[i]).findIndex((l) => /^(renewing the stack's lease|registering the stack) failed$/.test(String(l.msg)));
        if (failed !== -1) await proc.waitForLog((l) => l.msg === "stack registered", 15_000, marks[i]! + failed);
      }),
    );
  }

  /**
   * Waits until the test's client gets an answer. After a restart grpc-js may still hold the old
   * connection's backoff (calls fail fast with UNAVAILABLE for up to ~2 s), as every client does.
   */
  async agentAnswers(timeoutMs: number): Promise<void> {
    await waitFor("the agent to answer", async () => (await this.agent.client().info()) !== undefined, timeoutMs, 100);
  }

  /** Starts (or restarts) a stack's controller; `failpoint`: after-marker | after-stop | before-resume. */
  async startController(stack: SiteStack, o: { failpoint?: string; waitRegistered?: boolean } = {}): Promise<ControllerProcess> {
    if (stack.controller && !stack.controller.proc.exitStatus) await stack.controller.stop();
    const c = this.options.controller ?? {};
    const dir = join(this.scratch, "controllers", stack.guestId);
    await mkdir(dir, { recursive: true });
    // A token of this guest and stack, and the agent's CA pinned (the agent's listener is TLS with tokens).
    const credentials = await this.agent.credentialsFor(stack.guestId, stack.name);
    stack.controller = await startController({
      dir,
      guestId: stack.guestId,
      stack: stack.name,
      agent: credentials,
      markerDir: stack.markerDir,
      resume: stack.resume,
      resumeDeadlineMs: c.resumeDeadlineMs ?? 60_000,
      pollIntervalMs: c.pollIntervalMs ?? 300,
      leaseTtlMs: c.leaseTtlMs ?? 15_000,
      config: { agent: { ...credentials, callTimeoutMs: c.callTimeoutMs ?? 3_000 }, ...(c.resumeLeadMs !== undefined ? { resumeLeadMs: c.resumeLeadMs } : {}) },
      driver: countedAppDriver({ ledger: stack.ledger, dataDir: stack.dataDir, stopDelayMs: stack.stopDelayMs }),
      env: cleanEnv(o.failpoint ? { LULL_CONTROLLER_FAILPOINT: o.failpoint } : {}),
      ...(this.options.echo !== undefined ? { echo: this.options.echo } : {}),
      ...(o.waitRegistered !== undefined ? { waitRegistered: o.waitRegistered } : {}),
    });
    return stack.controller;
  }

  /** Leftovers of the agent's jobs (see leftovers.ts); empty when clean. */
  leftovers(): Promise<string[]> {
    const agentPid = this.agent.proc.exitStatus ? [] : [this.agent.proc.pid];
    return findLeftovers({
      prefix: this.prefix,
      stagingDir: this.stagingDir,
      archiveDir: this.archiveDir,
      snapshotParents: this.snapshotParents,
      ...(this.btrfs ? { listSubvolumes: this.btrfs.listSubvolumes } : {}),
      scratch: this.scratch,
      allowedMounts: [this.btrfs?.mountPoint, this.tmpfs].filter((m): m is string => m !== undefined),
      knownPids: agentPid,
    });
  }

  private async build(): Promise<void> {
    const o = this.options;
    if (o.guests.some((g) => g.storage === "btrfs")) {
      const why = await loopBtrfsUnavailable();
      if (why) throw new Error(`a btrfs guest needs a loop-mounted btrfs: ${why}`);
      this.btrfs = await mountLoopBtrfs({ dir: this.scratch, sizeBytes: o.btrfsSizeBytes ?? 1024 ** 3 });
    }
    if (o.archiveTmpfsBytes !== undefined) {
      this.tmpfs = join(this.scratch, "archives");
      await mkdir(this.tmpfs, { recursive: true });
      await execa("mount", ["-t", "tmpfs", "-o", `size=${o.archiveTmpfsBytes}`, "tmpfs", this.tmpfs], { shell: false, timeout: 30_000 });
    }
    for (const slow of o.slowAgentCommands ?? []) {
      this.shimDir = join(this.scratch, "bin");
      await installSlowCommand({ binDir: this.shimDir, ...slow });
    }
    const guests = [];
    for (const g of o.guests) {
      const volumes = [];
      for (const [i, spec] of g.stacks.entries()) {
        const s: SiteStackSpec = typeof spec === "string" ? { name: spec } : spec;
        let dataDir: string;
        if (g.storage === "btrfs") {
          const parent = join(this.btrfs!.mountPoint, g.id);
          await mkdir(parent, { recursive: true });
          if (!this.snapshotParents.includes(parent)) this.snapshotParents.push(parent);
          dataDir = await this.btrfs!.createSubvolume(join(g.id, s.name));
        } else {
          dataDir = join(this.scratch, "guests", g.id, s.name);
          await mkdir(dataDir, { recursive: true });
        }
        if (i === 0 && g.seedBytes) await writeSeedData({ dir: join(dataDir, "attachments"), totalBytes: g.seedBytes });
        volumes.push({ name: s.name, path: dataDir });
        const markerDir = join(this.scratch, "markers", g.id);
        await mkdir(markerDir, { recursive: true });
        const ledger = join(this.scratch, "ledgers", `${g.id}-${s.name}.jsonl`);
        await mkdir(join(this.scratch, "ledgers"), { recursive: true });
        this.stacks.push(new SiteStack(g.id, s.name, dataDir, markerDir, ledger, s.resume ?? "early", s.stopDelayMs ?? 0));
      }
      const storage =
        g.storage === "btrfs" ? { driver: "btrfs" as const } : { driver: "dir" as const, snapshot: g.storage === "dir-copy" ? ("copy" as const) : ("none" as const) };
      guests.push({ id: g.id, ...storage, volumes, ...(g.quiesceTimeoutMs ? { quiesceTimeoutMs: g.quiesceTimeoutMs } : {}) });
    }
    this.agent = await startAgent({
      dir: join(this.scratch, "agent"),
      guests,
      config: {
        quiesce: { timeoutMs: 20_000, policy: "fail" },
        leaseTtlMs: 15_000,
        shutdownGraceMs: 5_000,
        ...(this.tmpfs ? { archiveDir: this.tmpfs } : {}),
        ...o.agentConfig,
      },
      env: this.agentEnv(o.agentFailpoint),
      ...(o.echo !== undefined ? { echo: o.echo } : {}),
    });
    for (const stack of this.stacks) await appCtl("start", stack.dataDir);
    for (const stack of this.stacks) await this.startController(stack);
  }

  /** Stops controllers, the agent, the apps and anything the agent left running; unmounts; removes the scratch dir. */
  async teardown(): Promise<void> {
    const errors: string[] = [];
    const attempt = async (what: string, fn: () => Promise<unknown>) => {
      await fn().catch((err: unknown) => errors.push(`${what}: ${(err as Error).message}`));
    };
    for (const stack of this.stacks) if (stack.controller) await attempt(`controller ${stack.key}`, () => stack.controller!.stop(10_000));
    if (this.agent) await attempt("agent", () => this.agent.stop(10_000));
    for (const stack of this.stacks) {
      await attempt(`app ${stack.key}`, () =>
        appCtl("stop", stack.dataDir).catch((err: unknown) => {
          // A stop that fails must not leave the app running (it would keep the btrfs mount busy).
          const pid = Number(readFileSync(join(stack.dataDir, "app.pid"), { encoding: "utf8", flag: "r" }).trim());
          if (Number.isInteger(pid) && pid > 0) killPid9(pid);
          throw err;
        }),
      );
    }
    for (const p of await processesWithEnv(SCRATCH_ENV, this.scratch)) killPid9(p.pid);
    if (this.tmpfs) await attempt("tmpfs", () => execa("umount", [this.tmpfs!], { shell: false, timeout: 30_000 }));
    if (this.btrfs) await attempt("btrfs", () => this.btrfs!.teardown());
    await attempt("scratch", () => removeDir(this.scratch));
    if (errors.length > 0) throw new Error(`site teardown: ${errors.join("; ")}`);
  }
}
