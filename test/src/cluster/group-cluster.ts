// A cluster for consistency groups across nodes, with real processes: one agent per node, each in
// its own network namespace (ClusterNet), the test CA and each node's /etc/pve view (TestCluster),
// native `dir` copy guests with one demo-app stack each behind the counted driver (its ledger
// notes every start and stop) and its real lull-controller in this namespace. Each group is
// configured on every node that hosts a member; the benchmark starts them on the first node,
// which then coordinates them. Used by the group benchmark
// (test/src/bench/group.ts); `teardown()` stops every process, removes the namespaces and the
// scratch dir, and is safe to call after a failed start or twice.
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { execa } from "execa";
import { TestCluster } from "@lull/shared/testing";
import {
  ENTRY_POINTS,
  appCtl,
  countedAppDriver,
  makeTempDir,
  removeDir,
  startAgent,
  startController,
  type AgentProcess,
  type ControllerProcess,
} from "../support/index.js";
import { ClusterNet } from "./netns.js";

export interface GroupClusterOptions {
  /** Node names; the first coordinates the groups. */
  nodes: readonly string[];
  /** The guest ids each node hosts, in the order of `nodes` (a node with none runs no agent). */
  guests: ReadonlyArray<readonly string[]>;
  /** Each node's `groups` config, in the order of `nodes` (`remote` members name guests of the other nodes). */
  groups: ReadonlyArray<ReadonlyArray<Record<string, unknown>>>;
  quiesceTimeoutMs: number;
  /** The controllers give a held stack up after this long. */
  resumeDeadlineMs: number;
  /** How many stacks are started at once (each start is a Node start-up or two). */
  parallel?: number;
}

export interface ClusterStack {
  guestId: string;
  /** Index of its node in `nodes`. */
  node: number;
  dataDir: string;
  /** The counted driver's ledger (readLedger). */
  ledger: string;
  controller?: ControllerProcess;
}

/** Runs `work` over `items`, at most `limit` at a time. */
async function inBatches<T>(items: readonly T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  for (let i = 0; i < items.length; i += limit) await Promise.all(items.slice(i, i + limit).map(work));
}

export class GroupCluster {
  readonly agents: Array<AgentProcess | undefined> = [];
  readonly stacks: ClusterStack[] = [];
  private net: ClusterNet | undefined;
  private appsStarted: ClusterStack[] = [];
  private building: Promise<void> | undefined;
  /** lullctl calls not ended yet. */
  private readonly calls = new Set<{ kill(signal: "SIGKILL"): boolean }>();
  private tornDown: Promise<void> | undefined;

  private constructor(
    readonly dir: string,
    readonly options: GroupClusterOptions,
  ) {}

  /** Only its scratch dir: `start()` builds it (so a signal handler can hold it before it is built). */
  static async create(options: GroupClusterOptions): Promise<GroupCluster> {
    return new GroupCluster(await makeTempDir("lull-group-cluster-"), options);
  }

  /** Builds the whole cluster; on any failure tears down what it made and rethrows. */
  async start(): Promise<void> {
    this.building = this.build();
    try {
      await this.building;
    } catch (err) {
      await this.teardown();
      throw err;
    }
  }

  /** Throws once the teardown began (a signal during the set-up or a run): nothing more is started. */
  private checkNotTornDown(): void {
    if (this.tornDown !== undefined) throw new Error("the cluster was torn down during its set-up");
  }

  private async build(): Promise<void> {
    const o = this.options;
    this.checkNotTornDown();
    const net = ClusterNet.create(o.nodes.length);
    this.net = net;
    const ca = await TestCluster.create(join(this.dir, "cluster"), o.nodes.map((name, i) => ({ name, ip: net.nodes[i]!.ip })));
    await mkdir(join(this.dir, "ledgers"), { recursive: true });
    for (const [node, ids] of o.guests.entries()) {
      for (const guestId of ids) {
        const dataDir = join(this.dir, "guests", o.nodes[node]!, guestId, "app");
        await mkdir(dataDir, { recursive: true });
        this.stacks.push({ guestId, node, dataDir, ledger: join(this.dir, "ledgers", `${o.nodes[node]}-${guestId}.jsonl`) });
      }
    }
    this.checkNotTornDown();
    // allSettled: no agent is still starting when a failed set-up is torn down.
    const agentsStarted = await Promise.allSettled(
      o.nodes.map(async (name, i) => {
        const guests = this.stacks.filter((s) => s.node === i);
        if (guests.length === 0) return;
        this.agents[i] = await startAgent({
          dir: join(this.dir, name),
          netns: net.nodes[i]!.ns,
          // Reachable from this namespace, where the controllers run.
          listen: `${net.nodes[i]!.ip}:0`,
          guests: guests.map((s) => ({ id: s.guestId, driver: "dir", snapshot: "copy", volumes: [{ name: "app", path: s.dataDir }] })),
          config: {
            node: name,
            cluster: { enabled: true },
            schedules: { clusterRoot: ca.rootOf(name) },
            quiesce: { timeoutMs: o.quiesceTimeoutMs, policy: "fail" },
            shutdownGraceMs: 3_000,
            groups: o.groups[i] ?? [],
          },
          readyTimeoutMs: 30_000,
        });
      }),
    );
    const failed = agentsStarted.find((r) => r.status === "rejected");
    if (failed) throw failed.reason;
    const parallel = o.parallel ?? 4;
    await inBatches(this.stacks, parallel, async (s) => {
      this.checkNotTornDown();
      this.appsStarted.push(s);
      await appCtl("start", s.dataDir);
    });
    await inBatches(this.stacks, parallel, async (s) => {
      this.checkNotTornDown();
      await this.startStackController(s);
    });
  }

  /** (Re)starts a stack's controller, registered with its node's agent. */
  async startStackController(stack: ClusterStack, stopDelayMs = 0): Promise<void> {
    const agent = this.agents[stack.node];
    if (!agent) throw new Error(`node ${this.options.nodes[stack.node]} runs no agent`);
    const cdir = join(this.dir, "controllers", this.options.nodes[stack.node]!, stack.guestId);
    await mkdir(cdir, { recursive: true });
    stack.controller = await startController({
      dir: cdir,
      guestId: stack.guestId,
      stack: "app",
      agent,
      resumeDeadlineMs: this.options.resumeDeadlineMs,
      pollIntervalMs: 300,
      leaseTtlMs: 15_000,
      driver: countedAppDriver({ ledger: stack.ledger, dataDir: stack.dataDir, stopDelayMs }),
    });
  }

  /** The stack of `guestId` on node `node` (an index of `nodes`). */
  stack(node: number, guestId: string): ClusterStack {
    const s = this.stacks.find((x) => x.node === node && x.guestId === guestId);
    if (!s) throw new Error(`no stack of guest ${guestId} on node ${this.options.nodes[node]}`);
    return s;
  }

  /** lullctl against node `node`'s agent, over its local socket (the operator). */
  lullctl(node: number, args: readonly string[], timeoutMs = 60_000) {
    this.checkNotTornDown();
    const agent = this.agents[node];
    if (!agent) throw new Error(`node ${this.options.nodes[node]} runs no agent`);
    const call = execa(process.execPath, [ENTRY_POINTS.lullctl, "--socket", agent.socketPath, ...args], {
      reject: false,
      timeout: timeoutMs,
      // execa's clean-up hook re-raises a signal its listeners count as unhandled, which would kill
      // the caller before its own handler tears the cluster down; the teardown kills the calls instead.
      cleanup: false,
    });
    this.calls.add(call);
    void call.finally(() => this.calls.delete(call));
    return call;
  }

  /** Controllers, then agents, then the apps, then the namespaces and the scratch dir; never throws. Every call waits for the one teardown. */
  teardown(): Promise<void> {
    this.tornDown ??= this.stopEverything();
    return this.tornDown;
  }

  private async stopEverything(): Promise<void> {
    // A set-up in flight stops at its next step (checkNotTornDown); what it started by then is stopped below.
    await this.building?.catch(() => undefined);
    for (const call of this.calls) call.kill("SIGKILL");
    await Promise.all(this.stacks.map((s) => s.controller?.stop().catch(() => undefined)));
    await Promise.all(this.agents.map((a) => a?.stop().catch(() => undefined)));
    await inBatches(this.appsStarted, this.options.parallel ?? 4, (s) => appCtl("stop", s.dataDir).catch(() => undefined));
    this.net?.destroy();
    await removeDir(this.dir).catch(() => undefined);
  }
}
