// Restoring a vzdump/PBS restore point to a guest with Proxmox's own tools: `pct restore` for a
// container archive, `qmrestore` for a VM archive.
//
// Contract of restoreGuest(deps, request) → GuestRestoreResult:
// - The archive is the point's location: an absolute vzdump archive path, a volume id
//   (`<storage>:backup/<file>`), or a PBS snapshot id (`ct/101/<time>`; then `pbsStorage` names the
//   `pbs:` storage it is on). The guest type comes from the archive's name (`vzdump-lxc-` /
//   `vzdump-qemu-`, `ct/` / `vm/`); anything else is LULL_E_INVALID_ARGUMENT.
// - Always `--unique 1` (new MAC addresses, a new SMBIOS uuid): a restored copy never clashes with
//   the guest it came from. `--start 1` only when `start`.
// - `vmid` given: it must be free, or `force` must be set (then Proxmox overwrites that stopped
//   guest; a running one is refused by the tool). Taken: LULL_E_GUEST_EXISTS. `vmid` left out:
//   the next free id from `pvesh get /cluster/nextid`; when another restore takes it first (the
//   tool says `already exists`), a new id is asked for, up to 5 times.
// - Progress: `onProgress({ stage, percent?, line })` for each tool line (stages: `config`,
//   `allocating`, `extracting`, `merging`, `starting`, `done`); QEMU's `progress N%` lines carry the percent.
// - Cancel (`signal`) or timeout (`timeoutMs`): the tool gets SIGTERM (its worker removes what it
//   made); afterwards, whatever still exists of the guest this call created — a config left under
//   `lock: create`, volumes — is unlocked and destroyed with `--purge`, so no half-created guest
//   stays. A guest that existed before (force) is never destroyed. The error is the signal's reason
//   (LULL_E_CANCELLED / the caller's) or LULL_E_GUEST_RESTORE_FAILED with the tool's last line.
// - `description` replaces the restored guest's description (the verifier's marker).
// Returns { vmid, vmType, archive, log } once the tool exited 0.
import { LullError, type CommandRunner, type Launcher, type Logger } from "@lull/shared";

export type GuestType = "lxc" | "qemu";

export interface GuestRestoreDeps {
  runner: CommandRunner;
  launcher: Launcher;
  /** The Proxmox tools (the fake toolbox's in tests). */
  pct?: string | undefined;
  qm?: string | undefined;
  qmrestore?: string | undefined;
  pvesh?: string | undefined;
  log?: Logger | undefined;
}

export interface GuestRestoreProgress {
  stage: "config" | "allocating" | "extracting" | "merging" | "starting" | "done";
  percent?: number | undefined;
  line: string;
}

export interface RestorablePoint {
  id: string;
  locationKind: "native-archive" | "vzdump-archive" | "pbs-snapshot";
  location: string;
}

export interface GuestRestoreRequest {
  point: RestorablePoint;
  vmid?: number | undefined;
  force: boolean;
  start: boolean;
  /** Where the new volumes go (`--storage`); unset: the storages of the backed-up config. */
  storage?: string | undefined;
  /** The `pbs:` storage a PBS snapshot id is on. */
  pbsStorage?: string | undefined;
  description?: string | undefined;
  signal: AbortSignal;
  timeoutMs?: number | undefined;
  onProgress?: ((p: GuestRestoreProgress) => void) | undefined;
  /** Told the vmid before the tool runs (the verifier records it first, for its sweep). */
  onVmid?: ((vmid: number, type: GuestType) => Promise<void> | void) | undefined;
}

export interface GuestRestoreResult {
  vmid: number;
  vmType: GuestType;
  /** The archive as given to the tool. */
  archive: string;
  /** The tool's output lines. */
  log: string[];
}

const DEFAULT_TIMEOUT_MS = 6 * 3600_000;
const NEXTID_ATTEMPTS = 5;

/** The archive argument and guest type of a point, or why it cannot be restored to a guest. */
export function archiveOf(point: RestorablePoint, pbsStorage?: string): { archive: string; type: GuestType } {
  if (point.locationKind === "native-archive") {
    throw new LullError("LULL_E_INVALID_ARGUMENT", `point ${point.id} is a native archive: restore it to a directory (lullctl restore ${point.id} --to <dir>), not to a guest`);
  }
  if (point.locationKind === "pbs-snapshot") {
    const m = /^(?:([A-Za-z][\w.-]*):backup\/)?(ct|vm)\/\d+\/[^/]+$/.exec(point.location);
    if (!m) throw new LullError("LULL_E_INVALID_ARGUMENT", `point ${point.id}: ${point.location} is not a PBS snapshot id (ct|vm/<id>/<time>)`);
    const storage = m[1] ?? pbsStorage;
    if (!storage) throw new LullError("LULL_E_INVALID_ARGUMENT", `point ${point.id} is the PBS snapshot ${point.location}: name the pbs: storage it is on`);
    return { archive: m[1] ? point.location : `${storage}:backup/${point.location}`, type: m[2] === "ct" ? "lxc" : "qemu" };
  }
  const file = point.location.split("/").at(-1) ?? "";
  const m = /^vzdump-(lxc|qemu)-\d+-/.exec(file);
  if (!m || !(point.location.startsWith("/") || /^[A-Za-z][\w.-]*:backup\//.test(point.location))) {
    throw new LullError("LULL_E_INVALID_ARGUMENT", `point ${point.id}: ${point.location} is not a vzdump archive (an absolute path or <storage>:backup/vzdump-lxc|qemu-…)`);
  }
  return { archive: point.location, type: m[1] as GuestType };
}

const lastLine = (text: string) => text.trim().split("\n").filter(Boolean).at(-1) ?? "";

/** `pvesh get /cluster/nextid`: the API answers a JSON string (`"105"`), older ones a number. */
export async function nextFreeVmid(deps: Pick<GuestRestoreDeps, "runner" | "pvesh">, signal?: AbortSignal): Promise<number> {
  const r = await deps.runner.run(deps.pvesh ?? "pvesh", ["get", "/cluster/nextid", "--output-format", "json"], { signal, timeoutMs: 30_000, reject: false });
  if (r.exitCode !== 0) throw new LullError("LULL_E_GUEST_RESTORE_FAILED", `pvesh get /cluster/nextid exited ${r.exitCode}: ${lastLine(r.stderr)}`);
  const value = JSON.parse(r.stdout.trim()) as unknown;
  const id = Number(value);
  if (!Number.isInteger(id) || id < 100) throw new LullError("LULL_E_GUEST_RESTORE_FAILED", `pvesh get /cluster/nextid answered ${r.stdout.trim()}: not a vmid`);
  return id;
}

/** The guest's config as `pct|qm config` prints it, or undefined when it does not exist. */
export async function guestConfig(deps: Pick<GuestRestoreDeps, "runner" | "pct" | "qm">, type: GuestType, vmid: number): Promise<Map<string, string> | undefined> {
  const tool = type === "lxc" ? (deps.pct ?? "pct") : (deps.qm ?? "qm");
  const r = await deps.runner.run(tool, ["config", String(vmid)], { reject: false, timeoutMs: 30_000 });
  if (r.exitCode !== 0) {
    if (/does not exist/.test(r.stderr)) return undefined;
    throw new LullError("LULL_E_COMMAND_FAILED", `${tool} config ${vmid} exited ${r.exitCode}: ${lastLine(r.stderr)}`);
  }
  const keys = new Map<string, string>();
  for (const line of r.stdout.split("\n")) {
    const m = /^([\w.-]+):\s?(.*)$/.exec(line);
    if (m) keys.set(m[1]!, m[2]!);
  }
  return keys;
}

/**
 * Removes a guest this agent created: unmount (a container left `mounted`), unlock (a restore
 * killed under `lock: create`), then `destroy --purge`. A guest that is already gone is fine.
 */
export async function destroyCreatedGuest(deps: Pick<GuestRestoreDeps, "runner" | "pct" | "qm">, type: GuestType, vmid: number): Promise<boolean> {
  const tool = type === "lxc" ? (deps.pct ?? "pct") : (deps.qm ?? "qm");
  const conf = await guestConfig(deps, type, vmid);
  if (!conf) return false;
  const lock = conf.get("lock");
  if (type === "lxc" && lock === "mounted") await deps.runner.run(tool, ["unmount", String(vmid)], { reject: false, timeoutMs: 60_000 });
  else if (lock) await deps.runner.run(tool, ["unlock", String(vmid)], { reject: false, timeoutMs: 30_000 });
  if (type === "qemu") await deps.runner.run(tool, ["stop", String(vmid), "--skiplock", "1"], { reject: false, timeoutMs: 120_000 });
  // --destroy-unreferenced-disks: a restore killed under `lock: create` made volumes its config does not name yet.
  const args = ["destroy", String(vmid), "--purge", "1", "--destroy-unreferenced-disks", "1", ...(type === "lxc" ? ["--force", "1"] : ["--skiplock", "1"])];
  const r = await deps.runner.run(tool, args, { reject: false, timeoutMs: 300_000 });
  if (r.exitCode !== 0 && !/does not exist/.test(r.stderr)) {
    throw new LullError("LULL_E_CLEANUP_FAILED", `${tool} ${args.join(" ")} exited ${r.exitCode}: ${lastLine(r.stderr)}; remove guest ${vmid} by hand`);
  }
  return r.exitCode === 0;
}

function stageOf(line: string): GuestRestoreProgress {
  const pct = /^progress (\d+)% /.exec(line);
  if (pct) return { stage: "extracting", percent: Number(pct[1]), line };
  if (/^recovering backed-up configuration|^restore vma archive|^CFG:|^DEV:|^CTIME:/.test(line)) return { stage: "config", line };
  if (/Logical volume .* created|^new volume ID|^map '/.test(line)) return { stage: "allocating", line };
  if (/^restoring '.*' now|^extracting archive|^Total bytes read|^total bytes read/.test(line)) return { stage: "extracting", line };
  if (/^merging backed-up|^Detected container architecture|^rescan volumes/.test(line)) return { stage: "merging", line };
  if (/^Execute autostart/.test(line)) return { stage: "starting", line };
  return { stage: "extracting", line };
}

/** Restores a vzdump/PBS point to a guest; see the contract at the top of this file. */
export async function restoreGuest(deps: GuestRestoreDeps, request: GuestRestoreRequest): Promise<GuestRestoreResult> {
  const { archive, type } = archiveOf(request.point, request.pbsStorage);
  if (request.vmid !== undefined && (!Number.isInteger(request.vmid) || request.vmid < 100 || request.vmid > 999_999_999)) {
    throw new LullError("LULL_E_INVALID_ARGUMENT", `vmid ${request.vmid} is not a Proxmox vmid (an integer from 100 to 999999999)`);
  }
  request.signal.throwIfAborted();
  for (let attempt = 1; ; attempt++) {
    const vmid = request.vmid ?? (await nextFreeVmid(deps, request.signal));
    const existed = (await guestConfig(deps, "lxc", vmid)) !== undefined || (await guestConfig(deps, "qemu", vmid)) !== undefined;
    if (existed && !request.force) {
      if (request.vmid === undefined && attempt < NEXTID_ATTEMPTS) continue;
      throw new LullError("LULL_E_GUEST_EXISTS", `guest ${vmid} already exists: restore to another vmid, leave the vmid out for the next free one, or give force to overwrite it (it must be stopped)`);
    }
    await request.onVmid?.(vmid, type);
    const outcome = await runTool(deps, request, { archive, type, vmid, existed });
    if (outcome.raced && request.vmid === undefined && attempt < NEXTID_ATTEMPTS) continue;
    if (outcome.raced) {
      throw new LullError("LULL_E_GUEST_EXISTS", `guest ${vmid} already exists: ${outcome.reason}; restore to another vmid or give force`);
    }
    return { vmid, vmType: type, archive, log: outcome.log };
  }
}

async function runTool(
  deps: GuestRestoreDeps,
  request: GuestRestoreRequest,
  job: { archive: string; type: GuestType; vmid: number; existed: boolean },
): Promise<{ log: string[]; raced: false } | { log: string[]; raced: true; reason: string }> {
  const { archive, type, vmid, existed } = job;
  const opts = ["--unique", "1", "--start", request.start ? "1" : "0"];
  if (request.force) opts.push("--force", "1");
  if (request.storage) opts.push("--storage", request.storage);
  if (request.description !== undefined && type === "lxc") opts.push("--description", request.description);
  const [file, args] = type === "lxc" ? [deps.pct ?? "pct", ["restore", String(vmid), archive, ...opts]] : [deps.qmrestore ?? "qmrestore", [archive, String(vmid), ...opts]];
  const log: string[] = [];
  const stderr: string[] = [];
  const timeoutMs = request.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  deps.log?.info({ vmid, archive, tool: file }, "restoring point to a guest");
  const proc = deps.launcher.launch(file, args, {
    signal: request.signal,
    timeoutMs,
    stopGraceMs: 30_000,
    onLine: (line, stream) => {
      log.push(line);
      if (stream === "stderr") stderr.push(line);
      request.onProgress?.(stageOf(line));
    },
  });
  const exit = await proc.exit;
  if (exit.exitCode === 0 && !exit.cancelled && !exit.timedOut) {
    // qmrestore takes no description: set it on the restored, stopped VM.
    if (request.description !== undefined && type === "qemu") {
      await deps.runner.run(deps.qm ?? "qm", ["set", String(vmid), "--description", request.description], { timeoutMs: 60_000 });
    }
    request.onProgress?.({ stage: "done", line: `restored ${archive} to ${type === "lxc" ? "CT" : "VM"} ${vmid}` });
    return { log, raced: false };
  }
  const reason = exit.startError ?? (lastLine(stderr.join("\n")) || `exit code ${exit.exitCode ?? exit.signal}`);
  if (!existed && !exit.cancelled && !exit.timedOut && /already exists on node/.test(reason)) return { log, raced: true, reason };
  // Leave no half-created guest: the tool's own clean-up may not have run (SIGKILL after the grace).
  if (!existed) {
    try {
      await destroyCreatedGuest(deps, type, vmid);
    } catch (err) {
      deps.log?.error({ err, vmid }, "could not destroy the half-restored guest");
    }
  }
  if (exit.cancelled) throw request.signal.reason instanceof Error ? request.signal.reason : new LullError("LULL_E_CANCELLED", `restore to guest ${vmid} cancelled`);
  if (exit.timedOut) throw new LullError("LULL_E_GUEST_RESTORE_FAILED", `restore to guest ${vmid} took longer than ${timeoutMs} ms; the half-restored guest was destroyed`);
  throw new LullError("LULL_E_GUEST_RESTORE_FAILED", `${file} ${args.slice(0, 3).join(" ")} exited ${exit.exitCode ?? exit.signal}: ${reason}`);
}
