// The part of the fake Proxmox toolbox's seeding API (test/fakes/pve, its lib/seed.d.ts) that the
// agent's tests use. The agent package does not import the test workspace: ./fake-pve.ts loads the
// toolbox at run time from the directory the test command names (LULL_FAKE_PVE).

export type FileTree = Record<string, string | Uint8Array>;

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
  thinPoolFull?: string | string[] | true;
  lvcreateFail?: string;
  snapshotPrepareFail?: string;
  zfsSnapshotFail?: string;
  zfsDestroyBusy?: string[];
  slowArchive?: { chunkBytes?: number; delayMs?: number };
  hookFail?: { phase: string; exitCode?: number };
  pauseWhileFrozenMs?: number;
  qgaFreezeFail?: boolean | "error" | "status";
  guestStartFail?: string;
  /** `pct restore` / `qmrestore` wait this long before extracting, the create lock held (restore-commands.js). */
  slowRestore?: { delayMs?: number };
}

export interface VolumeSeed {
  storage?: string;
  size?: string;
  files?: FileTree;
}

export interface DiskSeed {
  key: string;
  storage?: string;
  size?: string;
  backup?: boolean;
  cdrom?: boolean;
  bytes?: Uint8Array;
}

export interface FakePve {
  readonly root: string;
  readonly binDir: string;
  readonly state: { path(...parts: string[]): string; readText(rel: string, fallback?: string): string | undefined };
  env(base?: NodeJS.ProcessEnv): Record<string, string>;
  storageCfgPath(): string;
  addZfsStorage(id: string, options: { pool?: string; mountRoot: string }): void;
  addPbsStorage(id: string, options?: { datastore?: string; server?: string; username?: string; content?: string }): void;
  writeVzdumpConf(keys: Record<string, string | number | undefined>): void;
  setThinPoolUsage(vg: string, pool: string, usage: { dataPercent?: number; metadataPercent?: number }): void;
  addContainer(
    vmid: number,
    options?: { hostname?: string; status?: "running" | "stopped"; rootfs?: VolumeSeed; mps?: (VolumeSeed & { mp: string; backup?: boolean; bind?: string })[]; config?: Record<string, string | number>; lock?: string },
  ): void;
  addVm(
    vmid: number,
    options?: { name?: string; status?: "running" | "stopped"; disks?: DiskSeed[]; agent?: boolean; agentRunning?: boolean; config?: Record<string, string | number>; lock?: string },
  ): void;
  addVolume(storeid: string, volname: string, options?: { size?: number; files?: FileTree; bytes?: Uint8Array }): string;
  writeGuestConf(type: "lxc" | "qemu", vmid: number, keys: Record<string, string | number | undefined>): void;
  setFaults(faults: FakeFaults): void;
  /** Node behaviour (see test/fakes/pve/lib/seed.d.ts FakeOptions): uptimeDays, shutdownMs, … */
  setOptions(options: { uptimeDays?: number; shutdownMs?: number; lockwaitMinuteMs?: number }): void;
  guest(vmid: number): GuestView | undefined;
  setGuest(vmid: number, patch: Partial<GuestRuntime>): void;
  setLock(vmid: number, lock: string | undefined): void;
  lvs(): FakeLv[];
  zfsSnapshots(): string[];
  calls(tool?: string): RecordedFakeCall[];
  /** The forked worker of a fake vzdump CLI process (its child leading its own session), if alive. */
  vzdumpWorkerOf(cliPid: number): number | undefined;
  /** Kills a fake vzdump as a crash does: the worker's process group, then the CLI process. Returns the worker's pid. */
  killVzdump(cliPid: number, signal?: NodeJS.Signals): number | undefined;
}

export interface FakePveToolbox {
  FakePve: {
    /** State in <dir>/state; storages local (dir <dir>/vz), local-lvm (pve/data), local-zfs (rpool/data under <dir>/zfs). */
    createStandard(dir: string, options?: { lvm?: boolean; zfs?: boolean }): FakePve;
  };
}
