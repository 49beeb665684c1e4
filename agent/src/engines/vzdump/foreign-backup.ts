// Backups Proxmox starts by itself (pvescheduler, the GUI, `vzdump` by hand) with Lull's hook in
// /etc/vzdump.conf (`script: <pve.hook.scriptPath>`): the hook server hands their `backup-start` to
// its onForeignBackup callback. The daemon creates a job record for the guest and returns
// `followForeignBackup(message, job's EngineHooks, deps)` as the session: the stacks are quiesced
// at pre-stop and resumed at snapshotted exactly as for the agent's own runs, and
// `hookOutcome()` settles the job at vzdump's `log-end`.
// Without vzdump's output only the hooks are seen: LXC snapshot mode still gets `snapshotted` (at
// pre-restart, checked against `parent: vzdump`); QEMU does not (its consistent point is only in
// the log), so a VM's stacks resume when the job ends.
import type { Clock, Logger } from "@lull/shared";
import type { EngineHooks } from "../engine.js";
import type { CommandRunner } from "@lull/shared";
import type { HookMessage } from "../../hook/hook-protocol.js";
import type { PveConfig } from "../../pve/config.js";
import { vzdumpSnapshotCommitted } from "../../pve/discovery.js";
import { VzdumpRun, type StopModeRecorder } from "./run.js";

export interface FollowDeps {
  runner: CommandRunner;
  pve: PveConfig;
  log: Logger;
  clock: Clock;
  /** Records a stop-mode shutdown of the guest, so the crash cleanup can start it if vzdump dies before restarting it. */
  shutdowns?: StopModeRecorder;
}

/** A session for a vzdump run the agent did not start; `message` is its `backup-start`. */
export function followForeignBackup(message: HookMessage, hooks: EngineHooks, deps: FollowDeps): VzdumpRun {
  const vmid = message.vmid;
  if (vmid === undefined || message.mode === undefined) throw new Error(`followForeignBackup needs a guest phase, got ${message.phase}`);
  const vmtype = message.env.VMTYPE === "qemu" ? "qemu" : "lxc";
  return new VzdumpRun({
    vmid,
    vmtype,
    requestedMode: message.mode,
    hooks,
    log: deps.log.child({ vmid, foreign: true }),
    clock: deps.clock,
    progressIntervalMs: deps.pve.vzdump.progressIntervalMs,
    snapshotCommitted: () => vzdumpSnapshotCommitted(deps.runner, vmid, deps.pve.commandTimeoutMs),
    ...(deps.shutdowns ? { shutdowns: deps.shutdowns } : {}),
  });
}
