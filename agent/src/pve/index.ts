// Public surface of the Proxmox side, for the daemon's wiring (main/agent) and for tests.
//
// Wiring sketch (the lead owns it):
//   const pve = config.pve;                                   // pveConfigSchema, merged into the agent config
//   const hookServer = new HookServer({ socketPath: pve.hook.socketPath, log, onForeignBackup });
//   await hookServer.start();
//   const hookScriptPath = await installHookLauncher({ ...pve.hook });
//   const lvmthin = createLvmThinDriver(driverDeps, { thinPool: pve.thinPool, mountDir: pve.mountDir, … });
//   const zfs = createZfsDriver(driverDeps, { commandTimeoutMs: pve.commandTimeoutMs });
//   const cleanup = new PveCleanup({ pve, node: config.node, runner, log, snapshotDrivers: [lvmthin, zfs] });
//   const vzdump = createVzdumpEngine({ pve, node: config.node, runner, launcher: createExecaLauncher(),
//                                       hookServer, hookScriptPath, clock, log, cleanup });
//   onForeignBackup = (m) => { const job = …create a job for m.vmid…; const run = followForeignBackup(m, job.hooks, deps);
//                              run.hookOutcome().then(job.done, job.failed); return run; }
export { createVzdumpEngine, parseVmid, VzdumpEngine, vzdumpArgs, type VzdumpEngineDeps } from "../engines/vzdump.js";
export { HookServer, type ForeignBackupHandler, type HookServerOptions, type HookSession } from "../hook/hook-server.js";
export { HOOK_MODULE_PATH, hookLauncherSource, installHookLauncher, type HookLauncherOptions } from "../hook/hook-install.js";
export type { HookMessage, HookReply, HookPhase, VzdumpMode } from "../hook/hook-protocol.js";
export { createLvmThinDriver, type LvmThinOptions } from "../storage/lvmthin.js";
export { createZfsDriver, type ZfsOptions } from "../storage/zfs.js";
export { PveCleanup, type PveCleanupDeps } from "./cleanup.js";
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
