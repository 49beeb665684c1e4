// Configuration fragment of the Proxmox side (vzdump engine, its hook, discovery, LVM-thin and
// ZFS drivers, crash cleanup). The lead merges `pveConfigSchema` into agent/src/config.ts as
// `pve: pveConfigSchema.prefault({})` and `vzdumpGuestSchema` into the guests union.
import { isAbsolute } from "node:path";
import { z } from "@lull/shared";

const absolutePath = z.string().min(1).refine(isAbsolute, { message: "must be an absolute path" });

/** Proxmox vmids: 100 … 999999999. */
export const VMID = /^[1-9][0-9]{2,8}$/;
/** Proxmox storage ids (pve-storage's `pve-storage-id`). */
export const STORAGE_ID = /^[a-z][a-z0-9\-_.]*[a-z0-9]$/i;

export const thinPoolLimitsSchema = z
  .strictObject({
    /** Refuse a snapshot when the pool's data use is above this (percent). */
    maxDataPercent: z.number().min(1).max(100).default(80),
    /** Refuse a snapshot when the pool's metadata use is above this (percent): metadata-full pools can lose data. */
    maxMetadataPercent: z.number().min(1).max(100).default(70),
  })
  .prefault({});

export const vzdumpSchema = z
  .strictObject({
    /** The vzdump executable (PATH lookup unless absolute). */
    command: z.string().min(1).default("vzdump"),
    /** Target storage (`--storage`); exclusive with dumpdir. Default: vzdump's own default (`local`). */
    storage: z.string().regex(STORAGE_ID, { message: `must match ${STORAGE_ID.source}` }).optional(),
    /** Target directory (`--dumpdir`); exclusive with storage. */
    dumpdir: absolutePath.optional(),
    compress: z.enum(["0", "gzip", "lzo", "zstd"]).default("zstd"),
    /** The mode asked for; vzdump may fall back (snapshot → suspend, not running → stop). */
    mode: z.enum(["snapshot", "suspend", "stop"]).default("snapshot"),
    /** `--lockwait` in minutes: how long to wait for a vzdump that Proxmox itself started. */
    lockwaitMinutes: z.number().int().min(0).max(600).default(180),
    bwlimitKiB: z.number().int().min(1).optional(),
    ionice: z.number().int().min(0).max(8).optional(),
    /** vzdump's pid file (UPID of the running vzdump): crash cleanup leaves guests alone while it runs. */
    pidFile: absolutePath.default("/var/run/vzdump.pid"),
    /** vzdump's global lock (flock): the crash cleanup holds it for its whole sweep, so no vzdump starts under it. */
    lockFile: absolutePath.default("/var/run/vzdump.lock"),
    /** vzdump's temporary dirs live here (`vzdumptmp<pid>_<vmid>`). */
    tmpDir: absolutePath.default("/var/tmp"),
    /** How often the size of a growing container archive is reported as progress. */
    progressIntervalMs: z.number().int().min(100).max(60_000).default(2_000),
    /** After SIGTERM (cancel), how long vzdump gets for its own cleanup before SIGKILL. */
    stopGraceMs: z.number().int().min(1_000).max(600_000).default(60_000),
    /** Upper bound of one whole vzdump run. */
    timeoutMs: z.number().int().min(10_000).max(7 * 24 * 3_600_000).default(24 * 3_600_000),
    /**
     * While a guest vzdump shut down in stop mode is still neither started again nor settled (a vzdump
     * ran when the cleanup looked), the crash cleanup is tried again this often, when no vzdump runs.
     */
    shutdownRecheckMs: z.number().int().min(1_000).max(3_600_000).default(60_000),
    /**
     * How long after a stop-mode shutdown a guest that still runs is watched for powering off, when
     * vzdump ended before its shutdown returned (`qm shutdown` / `lxc-stop` killed with it): set it
     * to vzdump's `stopwait` (default 10 min). 0: never watched.
     */
    shutdownWatchMs: z.number().int().min(0).max(86_400_000).default(600_000),
  })
  .refine((v) => !(v.storage !== undefined && v.dumpdir !== undefined), {
    message: "storage and dumpdir are exclusive",
    path: ["dumpdir"],
  })
  .prefault({});

export const hookSchema = z
  .strictObject({
    /** Unix socket of the agent's hook server (created owner-only, in an owner-only directory). */
    socketPath: absolutePath.default("/run/lull/vzdump-hook.sock"),
    /** Where the agent installs the hook launcher that vzdump runs (`--script`, or `script:` in /etc/vzdump.conf). */
    scriptPath: absolutePath.default("/var/lib/lull/vzdump-hook.mjs"),
    /** Absolute node binary for the launcher's shebang (vzdump runs hooks without PATH). Default: the agent's own. */
    nodePath: absolutePath.optional(),
    /** How long the hook waits at `pre-stop` for the agent's answer before it vetoes the backup. */
    preStopTimeoutMs: z.number().int().min(1_000).max(24 * 3_600_000).default(15 * 60_000),
    /**
     * The operator's own vzdump hook script, run by Lull's hook after its own step in every phase
     * with the same arguments and environment (its exit code is the hook's, as vzdump would see
     * it). Default: `script:` of vzdumpConfPath when that is not Lull's launcher — Lull's
     * `--script` overrides it, so without this chaining it would never run for Lull's backups.
     */
    userScript: absolutePath.optional(),
    /** vzdump's defaults file, read by the hook for the operator's `script:`. */
    vzdumpConfPath: absolutePath.default("/etc/vzdump.conf"),
    /** How long the hook waits for the agent in the other phases (then it goes on: it never fails them). */
    replyTimeoutMs: z.number().int().min(100).max(600_000).default(10_000),
  })
  .prefault({});

export const pveConfigSchema = z
  .strictObject({
    storageCfgPath: absolutePath.default("/etc/pve/storage.cfg"),
    /** Timeout of one pct/qm/pvesh/lvs/zfs/lvcreate call. */
    commandTimeoutMs: z.number().int().min(1_000).max(3_600_000).default(120_000),
    thinPool: thinPoolLimitsSchema,
    /** Read-only mounts of the agent's own LVM-thin snapshots (native engine, container volumes). */
    mountDir: absolutePath.default("/run/lull/mnt"),
    mountOptions: z.string().regex(/^[a-z0-9_=,]+$/).default("ro,noload"),
    mountsFile: absolutePath.default("/proc/self/mounts"),
    vzdump: vzdumpSchema,
    hook: hookSchema,
  })
  .prefault({});

/** A guest backed up by vzdump: its id is the vmid. */
export const vzdumpGuestSchema = z.strictObject({
  id: z.string().regex(VMID, { message: "must be a Proxmox vmid (100-999999999)" }),
  engine: z.literal("vzdump"),
  /** The vzdump mode asked for this guest; default pve.vzdump.mode. */
  mode: z.enum(["snapshot", "suspend", "stop"]).optional(),
  quiesceTimeoutMs: z.number().int().min(100).max(3_600_000).optional(),
  policy: z.enum(["fail", "crash-consistent"]).optional(),
});

export type PveConfig = z.output<typeof pveConfigSchema>;
export type VzdumpConfig = PveConfig["vzdump"];
export type HookConfig = PveConfig["hook"];
export type VzdumpGuestConfig = z.output<typeof vzdumpGuestSchema>;

/** The defaults, for callers and tests that have no config file. */
export function defaultPveConfig(overrides: z.input<typeof pveConfigSchema> = {}): PveConfig {
  return pveConfigSchema.parse(overrides);
}
