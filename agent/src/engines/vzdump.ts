// The vzdump engine (Proxmox): one `vzdump <vmid> --mode snapshot --script <lull hook> …` per job,
// serialised per node (vzdump itself allows one job per node; waiting here keeps a job `queued`
// instead of sitting on vzdump's global lock). Before a run: the guest is discovered (pvesh,
// pct/qm config, storage.cfg), a locked guest is refused, and every LVM-thin pool the guest uses
// is checked (data%/metadata%). During the run the hook server routes the guest's hook phases to
// a VzdumpRun, which also reads vzdump's output lines (see ../pve/vzdump-run.ts for the mapping).
import { LullError, validate, type Clock, type Logger } from "@lull/shared";
import type { GuestConfig } from "../config.js";
import type { CommandRunner } from "../exec/command-runner.js";
import type { HookServer } from "../hook/hook-server.js";
import type { PveCleanup } from "../pve/cleanup.js";
import { VMID, type PveConfig, type VzdumpConfig } from "../pve/config.js";
import { GuestDiscovery, vzdumpSnapshotCommitted } from "../pve/discovery.js";
import type { ProcessLauncher } from "../pve/process-launcher.js";
import { guardThinPools } from "../pve/thin-pool.js";
import { VzdumpRun } from "../pve/vzdump-run.js";
import type { BackupEngine, EngineResult, EngineRun } from "./engine.js";

export interface VzdumpEngineDeps {
  pve: PveConfig;
  /** This node's name, as Proxmox knows it. */
  node: string;
  runner: CommandRunner;
  launcher: ProcessLauncher;
  hookServer: Pick<HookServer, "attach">;
  /** The installed hook launcher (installHookLauncher's path). */
  hookScriptPath: string;
  clock: Clock;
  log: Logger;
  /** Start-up sweep (crash cleanup); without it sweep() removes nothing. */
  cleanup?: PveCleanup;
  /** Extra environment for vzdump (tests put the fake toolbox on PATH). */
  vzdumpEnv?: Record<string, string>;
}

/** argv of the vzdump call for one guest. */
export function vzdumpArgs(vmid: number, vzdump: VzdumpConfig, hookScriptPath: string): string[] {
  const args = [String(vmid), "--mode", vzdump.mode, "--script", hookScriptPath];
  if (vzdump.storage !== undefined) args.push("--storage", vzdump.storage);
  if (vzdump.dumpdir !== undefined) args.push("--dumpdir", vzdump.dumpdir);
  args.push("--compress", vzdump.compress, "--lockwait", String(vzdump.lockwaitMinutes));
  if (vzdump.bwlimitKiB !== undefined) args.push("--bwlimit", String(vzdump.bwlimitKiB));
  if (vzdump.ionice !== undefined) args.push("--ionice", String(vzdump.ionice));
  return args;
}

export function parseVmid(guestId: string): number {
  validate.guestId(guestId);
  if (!VMID.test(guestId)) throw new LullError("LULL_E_CONFIG_INVALID", `guest ${guestId}: the vzdump engine needs a Proxmox vmid as the guest id`);
  return Number(guestId);
}

export class VzdumpEngine implements BackupEngine {
  readonly name = "vzdump" as const;
  private tail: Promise<void> = Promise.resolve();
  private readonly discovery: GuestDiscovery;

  constructor(private readonly deps: VzdumpEngineDeps) {
    this.discovery = new GuestDiscovery({
      runner: deps.runner,
      node: deps.node,
      storageCfgPath: deps.pve.storageCfgPath,
      commandTimeoutMs: deps.pve.commandTimeoutMs,
    });
  }

  /** Runs fn after every earlier vzdump of this engine has ended (one vzdump per node). */
  private async serialized<T>(fn: () => Promise<T>, signal: AbortSignal): Promise<T> {
    const previous = this.tail;
    let done!: () => void;
    const mine = new Promise<void>((resolve) => (done = resolve));
    this.tail = previous.then(() => mine);
    try {
      await new Promise<void>((resolve, reject) => {
        const onAbort = () => reject(new LullError("LULL_E_CANCELLED", "cancelled while waiting for another vzdump on this node"));
        if (signal.aborted) return onAbort();
        signal.addEventListener("abort", onAbort, { once: true });
        void previous.then(() => {
          signal.removeEventListener("abort", onAbort);
          resolve();
        });
      });
      return await fn();
    } finally {
      done();
    }
  }

  run(run: EngineRun): Promise<EngineResult> {
    const vmid = parseVmid(run.guest.id);
    return this.serialized(() => this.runOne(vmid, run), run.signal);
  }

  private async runOne(vmid: number, run: EngineRun): Promise<EngineResult> {
    const { pve, runner, launcher, hookServer, clock } = this.deps;
    const log = run.log.child({ engine: "vzdump", vmid });
    const vzdump = { ...pve.vzdump, mode: (run.guest.engine === "vzdump" ? run.guest.mode : undefined) ?? pve.vzdump.mode };
    const guest = await this.discovery.guest(vmid, run.signal);
    if (guest.lock !== undefined) {
      const hint = guest.lock === "backup" ? " (left by a crashed vzdump? the agent's start-up sweep or `pct unlock`/`qm unlock` clears it)" : "";
      throw new LullError("LULL_E_GUEST_BUSY", `guest ${vmid} is locked (${guest.lock})${hint}`);
    }
    const pools = guest.volumes.flatMap((v) => (v.lvm?.thinpool !== undefined ? [{ vg: v.lvm.vg, pool: v.lvm.thinpool }] : []));
    const usages = await guardThinPools(runner, pools, pve.thinPool, { signal: run.signal, timeoutMs: pve.commandTimeoutMs });
    for (const u of usages) {
      run.hooks.note(`thin pool ${u.vg}/${u.pool}: data ${u.dataPercent.toFixed(2)}%, metadata ${u.metadataPercent.toFixed(2)}%`);
    }
    const session = new VzdumpRun({
      vmid,
      vmtype: guest.type,
      requestedMode: vzdump.mode,
      hooks: run.hooks,
      log,
      clock,
      progressIntervalMs: vzdump.progressIntervalMs,
      snapshotCommitted: () => vzdumpSnapshotCommitted(runner, vmid, pve.commandTimeoutMs),
    });
    const detach = hookServer.attach(vmid, session);
    try {
      const args = vzdumpArgs(vmid, vzdump, this.deps.hookScriptPath);
      log.info({ argv: [vzdump.command, ...args], type: guest.type, status: guest.status }, "vzdump starting");
      const proc = launcher.launch(vzdump.command, args, {
        onLine: (line) => session.onLine(line),
        signal: run.signal,
        stopGraceMs: vzdump.stopGraceMs,
        timeoutMs: vzdump.timeoutMs,
        ...(this.deps.vzdumpEnv !== undefined ? { env: this.deps.vzdumpEnv } : {}),
      });
      session.pid = proc.pid;
      const exit = await proc.exit;
      log.info({ exitCode: exit.exitCode, signal: exit.signal, mode: session.mode }, "vzdump ended");
      return await session.outcome(exit, run.signal);
    } finally {
      detach();
      session.stop();
    }
  }

  async sweep(_guests: readonly GuestConfig[], signal?: AbortSignal): Promise<string[]> {
    if (!this.deps.cleanup) return [];
    return this.deps.cleanup.sweep(signal);
  }
}

export function createVzdumpEngine(deps: VzdumpEngineDeps): VzdumpEngine {
  return new VzdumpEngine(deps);
}
