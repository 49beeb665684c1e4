// Types of the fake toolbox's seeding API (seed.js), for the TypeScript tests.

export declare const FAKE_BIN_DIR: string;

export interface FileTree {
  [relativePath: string]: string | Uint8Array;
}

export interface ContainerVolumeSeed {
  storage?: string;
  size?: string;
  files?: FileTree;
}

export interface MountPointSeed {
  storage?: string;
  mp: string;
  backup?: boolean;
  size?: string;
  files?: FileTree;
  /** A bind mount of this host path instead of a volume. */
  bind?: string;
}

export interface VmDiskSeed {
  key: string;
  storage?: string;
  size?: string;
  backup?: boolean;
  cdrom?: boolean;
  bytes?: Uint8Array;
}

export interface GuestRuntime {
  status: "running" | "stopped" | "paused" | "prelaunch";
  frozen?: boolean;
  agentRunning?: boolean;
  fsFrozen?: boolean;
  pid?: number;
}

export interface GuestView {
  type: "lxc" | "qemu";
  keys: Record<string, string>;
  lock?: string;
  parent?: string;
  snapshots: string[];
  runtime?: GuestRuntime;
}

export interface FakeLv {
  vg: string;
  name: string;
  kind: "pool" | "thin" | "linear";
  size: number;
  pool?: string;
  origin?: string;
  dataPercent?: number;
  metadataPercent?: number;
  active: boolean;
  readOnly: boolean;
  skipActivation: boolean;
}

export interface RecordedFakeCall {
  tool: string;
  args: string[];
  pid: number;
  at: number;
}

export interface FakeFaults {
  /** `vg/pool` names (or true for every pool) whose thin snapshots fail as if the pool were full. */
  thinPoolFull?: string | string[] | true;
  /** lvcreate fails with this message. */
  lvcreateFail?: string;
  /** vzdump's snapshot preparation fails with `mode failure - <this>` (→ suspend mode). */
  snapshotPrepareFail?: string;
  /** `zfs snapshot` fails with this reason. */
  zfsSnapshotFail?: string;
  /** `zfs destroy` of these snapshots fails with `dataset is busy`. */
  zfsDestroyBusy?: string[];
  /** The archive writer pauses delayMs after every chunkBytes. */
  slowArchive?: { chunkBytes?: number; delayMs?: number };
  /** The hook of this phase is treated as having exited with exitCode (default 1). */
  hookFail?: { phase: string; exitCode?: number };
  /** QEMU: the kvm vzdump started paused for a backup stays in `prelaunch` this long before the backup job starts. */
  prelaunchHoldMs?: number;
  /** vzdump sleeps this long while the CT is frozen for its snapshot. */
  pauseWhileFrozenMs?: number;
  /**
   * The guest agent's fs-freeze fails (logged as ERROR, backup continues): "error" — the agent
   * answered an error (`unable to freeze guest fs - …`), "status" — the freeze timed out and the
   * status query failed (`querying status after freezing guest fs failed - …`), true — the wording
   * of older qemu-server (`VM <id> qmp command 'guest-fsfreeze-freeze' failed - got timeout`).
   */
  qgaFreezeFail?: boolean | "error" | "status";
  /** `pct start` / `qm start` of a stopped, unlocked guest fails with this message (exit 255). */
  guestStartFail?: string;
  /** `pct restore` / `qmrestore` wait this long before extracting, the create lock held (restore-commands.js). */
  slowRestore?: { delayMs?: number };
}

export interface FakeOptions {
  /** How long one "minute" of --lockwait lasts (default 60000). */
  lockwaitMinuteMs?: number;
  /** QEMU progress lines at most this often (default 2000, like vzdump). */
  progressIntervalMs?: number;
  /** Size of a VM disk without seeded bytes (default 1 MiB). */
  qemuDiskBytes?: number;
  /** "new" (2026+, default) or "old" wording of the skipped guest-agent freeze. */
  qgaWording?: "new" | "old";
  /** Log `starting backup via QMP command` (default true). */
  qmpStartLine?: boolean;
  /** How long a guest takes to shut down for vzdump's stop mode (`qm shutdown`, `lxc-stop`; default 0). */
  shutdownMs?: number;
  /** The node's uptime in days: UPIDs carry a pstart shifted by it (9 hex digits past ~497 days), and
   * <state>/proc/<pid>/stat shows the vzdump worker with that start time (point the agent's procDir there). */
  uptimeDays?: number;
}

export declare class StateDir {
  readonly root: string;
  path(...parts: string[]): string;
  readText(rel: string, fallback?: string): string | undefined;
  writeText(rel: string, text: string): void;
  exists(rel: string): boolean;
  remove(rel: string): void;
}

export declare class FakePve {
  static create(root: string, options?: { node?: string }): FakePve;
  /** State in <dir>/state; storages local (dir <dir>/vz), local-lvm (pve/data), local-zfs (rpool/data under <dir>/zfs). */
  static createStandard(dir: string, options?: { lvm?: boolean; zfs?: boolean }): FakePve;
  constructor(root: string);
  readonly root: string;
  readonly state: StateDir;
  readonly binDir: string;
  env(base?: NodeJS.ProcessEnv): Record<string, string>;
  node(): string;
  storageCfgPath(): string;
  addDirStorage(id: string, path: string, options?: { content?: string }): void;
  addPbsStorage(id: string, options?: { datastore?: string; server?: string; username?: string; content?: string }): void;
  writeVzdumpConf(keys: Record<string, string | number | undefined>): void;
  addLvmThinStorage(
    id: string,
    options?: { vg?: string; pool?: string; size?: number; dataPercent?: number; metadataPercent?: number },
  ): void;
  setThinPoolUsage(vg: string, pool: string, usage: { dataPercent?: number; metadataPercent?: number }): void;
  addZfsStorage(id: string, options: { pool?: string; mountRoot: string }): void;
  addVolume(storeid: string, volname: string, options?: { size?: number; files?: FileTree; bytes?: Uint8Array }): string;
  addContainer(
    vmid: number,
    options?: {
      hostname?: string;
      status?: "running" | "stopped";
      rootfs?: ContainerVolumeSeed;
      mps?: MountPointSeed[];
      config?: Record<string, string | number>;
      lock?: string;
    },
  ): void;
  addVm(
    vmid: number,
    options?: {
      name?: string;
      status?: "running" | "stopped";
      disks?: VmDiskSeed[];
      agent?: boolean;
      agentRunning?: boolean;
      config?: Record<string, string | number>;
      lock?: string;
    },
  ): void;
  /** Writes a guest config (`key: value` lines) as it is, e.g. one a killed restore left under `lock: create`. */
  writeGuestConf(type: "lxc" | "qemu", vmid: number, keys: Record<string, string | number | undefined>): void;
  setFaults(faults: FakeFaults): void;
  setOptions(options: FakeOptions): void;
  guest(vmid: number): GuestView | undefined;
  setGuest(vmid: number, patch: Partial<GuestRuntime>): void;
  /** Sets (or, with undefined, removes) the guest's `lock:`. */
  setLock(vmid: number, lock: string | undefined): void;
  lvs(): FakeLv[];
  zfsSnapshots(): string[];
  calls(tool?: string): RecordedFakeCall[];
  /** The forked worker of a fake vzdump CLI process (its child leading its own session), if alive. */
  vzdumpWorkerOf(cliPid: number): number | undefined;
  /** Kills a fake vzdump as a crash does: the worker's process group, then the CLI process. Returns the worker's pid. */
  killVzdump(cliPid: number, signal?: NodeJS.Signals): number | undefined;
}
