// Test helpers for the Proxmox side against the fake Proxmox toolbox (test/fakes/pve): a seeded
// node in a temp dir, a real command runner and vzdump launcher that find the fakes first on
// PATH, the real hook server and hook launcher, and EngineHooks that record what a job would see.
// The toolbox lives in the test workspace, which the agent package does not import: it is loaded
// at run time from the directory in LULL_FAKE_PVE, which the test command sets (see the root
// package.json's `test` script; by hand: `LULL_FAKE_PVE=test/fakes/pve node --test …`).
import { spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { Consistency, SnapshotMode } from "@lull/proto";
import { LullError, silentLogger, systemClock } from "@lull/shared";
import type { EngineHooks } from "../../engines/engine.js";
import type { CommandRunner } from "@lull/shared";
import { createExecaRunner } from "@lull/shared";
import { createRecordingRunner, type RecordingRunner } from "@lull/shared/testing";
import { installHookLauncher } from "../../hook/hook-install.js";
import { waitUntil } from "../../testing/wait.js";
import { HookServer, type ForeignBackupHandler } from "../../hook/hook-server.js";
import { defaultPveConfig, type PveConfig } from "../config.js";
import { createExecaLauncher, type Launcher } from "@lull/shared";
import type { FakePve, FakePveToolbox } from "./fake-pve-api.js";

export type { FakePve };

/** The env var naming the fake toolbox's directory (the one with `bin/` and `lib/seed.js`). */
export const FAKE_PVE_ENV = "LULL_FAKE_PVE";

/** Loads the fake toolbox's seeding API from $LULL_FAKE_PVE; throws when the variable is not set. */
export function loadFakePveToolbox(): Promise<FakePveToolbox> {
  const dir = process.env[FAKE_PVE_ENV];
  if (dir === undefined || dir === "") {
    return Promise.reject(new Error(`${FAKE_PVE_ENV} is not set: these tests run against the fake Proxmox toolbox and need its directory (test/fakes/pve; the test command sets it)`));
  }
  return import(pathToFileURL(join(resolve(dir), "lib", "seed.js")).href) as Promise<FakePveToolbox>;
}

export interface FakePveNode {
  dir: string;
  pve: FakePve;
  dumpDir: string;
  /** PATH (fakes first) and PVE_FAKE_STATE for any child process. */
  env: Record<string, string>;
  /** Real execa runner with `env`, recording every call. */
  runner: RecordingRunner;
  launcher: Launcher;
  hookServer: HookServer;
  hookScriptPath: string;
  config: PveConfig;
  close(): Promise<void>;
}

export async function startFakePveNode(options: { onForeignBackup?: ForeignBackupHandler; pve?: Parameters<typeof defaultPveConfig>[0] } = {}): Promise<FakePveNode> {
  const dir = await mkdtemp(join(tmpdir(), "lull-fakepve-"));
  const { FakePve } = await loadFakePveToolbox();
  const pve = FakePve.createStandard(dir);
  const full = pve.env();
  const env = { PATH: full.PATH!, PVE_FAKE_STATE: full.PVE_FAKE_STATE! };
  const base = createExecaRunner();
  const withEnv: CommandRunner = { run: (file, args, o = {}) => base.run(file, args, { ...o, env: { ...env, ...(o.env ?? {}) } }) };
  const runner = createRecordingRunner({ delegate: withEnv });
  const config = defaultPveConfig({
    storageCfgPath: pve.storageCfgPath(),
    commandTimeoutMs: 20_000,
    mountDir: join(dir, "mnt"),
    mountsFile: join(dir, "mounts"),
    ...options.pve,
    vzdump: { storage: "local", pidFile: pve.state.path("run", "vzdump.pid"), lockFile: pve.state.path("run", "vzdump.lock"), tmpDir: join(dir, "tmp"), progressIntervalMs: 100, stopGraceMs: 10_000, ...(options.pve?.vzdump ?? {}) },
    hook: { socketPath: join(dir, "run", "hook.sock"), scriptPath: join(dir, "hook", "vzdump-hook.mjs"), preStopTimeoutMs: 20_000, replyTimeoutMs: 5_000, vzdumpConfPath: pve.state.path("etc", "vzdump.conf") },
  });
  const hookServer = new HookServer({ socketPath: config.hook.socketPath, log: silentLogger(), ...(options.onForeignBackup ? { onForeignBackup: options.onForeignBackup } : {}) });
  await hookServer.start();
  const hookScriptPath = await installHookLauncher({ ...config.hook });
  return {
    dir,
    pve,
    dumpDir: join(dir, "vz", "dump"),
    env,
    runner,
    launcher: createExecaLauncher(),
    hookServer,
    hookScriptPath,
    config,
    async close() {
      await hookServer.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export type HookCall =
  | { kind: "quiesce" }
  | { kind: "skip-quiesce"; reason: string }
  | { kind: "snapshotting"; mode: SnapshotMode }
  | { kind: "snapshotted"; mode: SnapshotMode; snapshotAt: number }
  | { kind: "archiving"; mode: SnapshotMode }
  | { kind: "progress"; done: number; total: number }
  | { kind: "note"; message: string };

export interface RecordingHooks extends EngineHooks {
  calls: HookCall[];
  /** The phase calls only (quiesce, skip-quiesce, snapshotting, snapshotted, archiving), as `kind` or `kind:mode`. */
  phases(): string[];
  notes(): string[];
}

const MODE_NAMES: Record<number, string> = {
  [SnapshotMode.SNAPSHOT_MODE_SNAPSHOT]: "snapshot",
  [SnapshotMode.SNAPSHOT_MODE_SUSPEND]: "suspend",
  [SnapshotMode.SNAPSHOT_MODE_STOP]: "stop",
};

/** EngineHooks that record; `quiesce` answers APP unless told to refuse or to wait. */
export function recordingHooks(
  behaviour: { refuse?: string; quiesceDelayMs?: number; onSnapshotted?: () => void; onQuiesce?: () => void } = {},
): RecordingHooks {
  const calls: HookCall[] = [];
  return {
    calls,
    phases: () =>
      calls
        .filter((c) => c.kind !== "note" && c.kind !== "progress")
        .map((c) => ("mode" in c ? `${c.kind}:${MODE_NAMES[c.mode] ?? c.mode}` : c.kind)),
    notes: () => calls.flatMap((c) => (c.kind === "note" ? [c.message] : [])),
    async quiesce() {
      calls.push({ kind: "quiesce" });
      behaviour.onQuiesce?.();
      if (behaviour.quiesceDelayMs) await systemClock.sleep(behaviour.quiesceDelayMs);
      if (behaviour.refuse !== undefined) throw new LullError("LULL_E_QUIESCE_REFUSED", behaviour.refuse);
      return Consistency.CONSISTENCY_APP;
    },
    skipQuiesce: (reason) => void calls.push({ kind: "skip-quiesce", reason }),
    snapshotting: (mode) => void calls.push({ kind: "snapshotting", mode }),
    snapshotted: (info) => {
      calls.push({ kind: "snapshotted", ...info });
      behaviour.onSnapshotted?.();
    },
    archiving: (info) => void calls.push({ kind: "archiving", mode: info.mode }),
    progress: (done, total) => void calls.push({ kind: "progress", done, total }),
    note: (message) => void calls.push({ kind: "note", message }),
  };
}

/**
 * SIGKILLs a fake vzdump as a crash does — its forked worker's process group and its CLI process —
 * and waits until both are gone (killing the CLI alone leaves the worker running, as on a real node).
 */
export async function killVzdumpTree(node: FakePveNode, cliPid: number): Promise<void> {
  const worker = node.pve.killVzdump(cliPid, "SIGKILL");
  const alive = (pid: number) => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  };
  await waitUntil(() => !alive(cliPid) && (worker === undefined || !alive(worker)));
}

/** Starts the fake vzdump with `args` and SIGKILLs it once `until` holds (what a killed vzdump leaves). */
export async function killVzdump(node: FakePveNode, args: string[], until: () => boolean): Promise<void> {
  const child = spawn(join(node.pve.binDir, "vzdump"), args, { env: { ...process.env, ...node.env }, stdio: "ignore" });
  const exited = new Promise((r) => child.on("close", r));
  await waitUntil(until);
  await killVzdumpTree(node, child.pid!); // the CLI process and its forked worker
  await exited;
}
