// Public surface of the Proxmox side, for the daemon's wiring (main/agent) and for tests.
//
// The daemon's wiring is createPveDaemonPart (./daemon.ts), used by agent.ts: the vzdump engine with
// its crash cleanup, the hook server on pve.hook.socketPath, the hook launcher at pve.hook.scriptPath,
// and jobs for backups Proxmox starts by itself (./foreign-jobs.ts).
export { createVzdumpEngine, parseVmid, VzdumpEngine, vzdumpArgs, type VzdumpEngineDeps } from "../engines/vzdump.js";
export { HookServer, type ForeignBackupHandler, type HookServerOptions, type HookSession } from "../hook/hook-server.js";
export { HOOK_MODULE_PATH, hookLauncherSource, installHookLauncher, type HookLauncherOptions } from "../hook/hook-install.js";
export type { HookMessage, HookReply, HookPhase, VzdumpMode } from "../hook/hook-protocol.js";
export { createLvmThinDriver, type LvmThinOptions } from "../storage/lvmthin.js";
export { createZfsDriver, type ZfsOptions } from "../storage/zfs.js";
export { PveCleanup, type PveCleanupDeps } from "./cleanup.js";
export { createPveDaemonPart, usesVzdump, type PveDaemonDeps, type PveDaemonPart, type PveJobsDeps } from "./daemon.js";
export { FOREIGN_REQUESTER, foreignBackupHandler, type ForeignJobsDeps } from "./foreign-jobs.js";
export {
  defaultPveConfig,
  pveConfigSchema,
  vzdumpGuestSchema,
  type PveConfig,
  type VzdumpGuestConfig,
} from "./config.js";
export { GuestDiscovery, type DiscoveryDeps, type GuestSummary, type PveGuest } from "./discovery.js";
export { followForeignBackup, type FollowDeps } from "./foreign-backup.js";
export type { PveVolume } from "./guest-config.js";
export { createExecaLauncher, type ProcessLauncher } from "./process-launcher.js";
export { guardThinPools, checkThinPool, type ThinPoolUsage } from "./thin-pool.js";
export { VzdumpRun } from "./vzdump-run.js";
