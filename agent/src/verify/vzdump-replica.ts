// The ephemeral replica of a vzdump/PBS point: a scratch guest. The point is restored with
// `restoreGuest` (`--unique 1`, `--start 0`) to a vmid from `/cluster/nextid`, recorded in the
// replica's state file *before* the tool runs (the sweep after a crash finds it there), with the
// replica's marker (`<prefix>verify-<run>`) as its description. Every network device is then set
// `link_down=1` while the guest is stopped, so the copy can never answer on the original's
// network. A container is mounted (`pct mount`: its root filesystem appears as `root/rootfs`, the
// path a check's dataDir/command starts from); a VM is started (its vmid is in LULL_REPLICA_VMID
// for a command check). Teardown (replica.ts) unmounts, unlocks and destroys the guest with
// `--purge` — only when its description carries this replica's marker, or when it is a config
// still under `lock: create` (a restore killed before it wrote the marker).
import { symlink } from "node:fs/promises";
import { join } from "node:path";
import { LullError, type CommandRunner, type Launcher, type Logger } from "@lull/shared";
import type { RestorePoint } from "../backups/restore-point.js";
import { guestConfig, restoreGuest } from "../pve/guest-restore.js";
import { saveReplicaState, type Replica } from "./replica.js";

export interface VzdumpReplicaDeps {
  runner: CommandRunner;
  launcher: Launcher;
  pct?: string | undefined;
  qm?: string | undefined;
  qmrestore?: string | undefined;
  pvesh?: string | undefined;
  /** The `pbs:` storage of a guest's PBS points (its vzdump target storage). */
  pbsStorageOf?: ((guestId: string) => string | undefined) | undefined;
  /** Where scratch guests' volumes go (`--storage`); unset: those of the backed-up config. */
  storage?: string | undefined;
  log?: Logger | undefined;
}

/** The marker a scratch guest's description starts with: `<prefix>verify-<run>`. */
export const replicaMarker = (replica: Replica) => replica.dir.split("/").at(-1) ?? "";

/** `net0: name=eth0,bridge=vmbr0,…` → the same with `link_down=1`. */
export function withLinkDown(value: string): string {
  const parts = value.split(",").filter((p) => !p.startsWith("link_down="));
  return [...parts, "link_down=1"].join(",");
}

export function vzdumpReplicaRestorer(deps: VzdumpReplicaDeps): (point: RestorePoint, replica: Replica, signal: AbortSignal) => Promise<void> {
  return async (point, replica, signal) => {
    const marker = replicaMarker(replica);
    const result = await restoreGuest(deps, {
      point,
      force: false,
      start: false,
      storage: deps.storage,
      pbsStorage: deps.pbsStorageOf?.(point.guestId),
      description: `${marker} scratch copy of restore point ${point.id} for verification; destroyed when it ends`,
      signal,
      onVmid: async (vmid, type) => {
        replica.state.vmid = vmid;
        replica.state.vmType = type;
        await saveReplicaState(replica);
      },
      onProgress: (p) => deps.log?.debug({ pointId: point.id, stage: p.stage, percent: p.percent }, p.line),
    });
    signal.throwIfAborted();
    const tool = result.vmType === "lxc" ? (deps.pct ?? "pct") : (deps.qm ?? "qm");
    const conf = await guestConfig(deps, result.vmType, result.vmid);
    if (!conf) throw new LullError("LULL_E_GUEST_RESTORE_FAILED", `the scratch guest ${result.vmid} is gone right after its restore`);
    const nets = [...conf].filter(([k]) => /^net\d+$/.test(k));
    if (nets.length > 0) {
      const args = ["set", String(result.vmid), ...nets.flatMap(([k, v]) => [`--${k}`, withLinkDown(v)])];
      await deps.runner.run(tool, args, { signal, timeoutMs: 60_000 });
    }
    signal.throwIfAborted();
    if (result.vmType === "lxc") {
      const r = await deps.runner.run(tool, ["mount", String(result.vmid)], { signal, timeoutMs: 120_000 });
      const m = /mounted CT \d+ in '([^']+)'/.exec(r.stdout);
      if (!m) throw new LullError("LULL_E_GUEST_RESTORE_FAILED", `pct mount ${result.vmid} said ${JSON.stringify(r.stdout.trim())}: no mount path`);
      await symlink(m[1]!, join(replica.root, "rootfs"));
    } else {
      await deps.runner.run(tool, ["start", String(result.vmid)], { signal, timeoutMs: 300_000 });
    }
  };
}

/**
 * Whether a scratch guest is this replica's own, so teardown may destroy it: its description
 * carries the replica's marker, or it is only a config under `lock: create` (a restore killed
 * before writing the marker — no one else's guest looks like that under a vmid we recorded).
 */
export function isReplicaGuest(conf: Map<string, string>, marker: string): boolean {
  if ((conf.get("description") ?? "").includes(marker)) return true;
  return conf.get("lock") === "create" && [...conf.keys()].every((k) => k === "lock" || k === "digest");
}
