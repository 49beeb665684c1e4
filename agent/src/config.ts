// The agent's configuration: flags > environment > file > defaults, validated once, frozen.
// Nothing else in the agent reads process.env.
import { lstatSync, realpathSync } from "node:fs";
import { isIP } from "node:net";
import { isAbsolute, join, relative, resolve } from "node:path";
import { DEFAULT_AGENT_SOCKET, GUEST_ID, LullError, loadConfig, z } from "@lull/shared";
import { groupConfigIssues, groupConfigSchema } from "./groups/config.js";
import { metricsConfigSchema } from "./metrics/config.js";
import { notificationsConfigSchema } from "./notify/config.js";
import { pveConfigSchema, vzdumpGuestSchema } from "./pve/config.js";
import { retentionConfigSchema } from "./retention/config.js";
import { scheduleConfigIssues, schedulesConfigSchema } from "./schedules/config.js";
import { verifyConfigSchema } from "./verify/config.js";
import { pruneConfigIssues, pruneConfigSchema } from "./prune/config.js";
import { statusConfigSchema } from "./status/config.js";
import { clusterConfigSchema } from "./cluster/config.js";

const absolutePath = z.string().min(1).refine(isAbsolute, { message: "must be an absolute path" });
const name = z.string().regex(/^[a-z0-9][a-z0-9_-]{0,31}$/, { message: "must match ^[a-z0-9][a-z0-9_-]{0,31}$" });

/** Where lullctl and the vzdump hook's operator calls reach the agent. */
export const DEFAULT_SOCKET = DEFAULT_AGENT_SOCKET;

/** A DNS name or an IPv4/IPv6 address, as it may appear in a certificate's subjectAltName. */
const certName = z
  .string()
  .max(253)
  .refine((v) => isIP(v) !== 0 || /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/.test(v), {
    message: "must be a DNS name or an IP address",
  });

const bucketSchema = z.strictObject({
  burst: z.number().int().min(1).max(10_000),
  perSecond: z.number().min(0.01).max(10_000),
});

const volumeSchema = z.strictObject({
  /** Name of the volume inside the archive (`data`, `db`). */
  name,
  /** Host path: a directory (dir driver) or a btrfs subvolume (btrfs driver). */
  path: absolutePath,
});

const nativeGuestSchema = z.strictObject({
  id: z.string().regex(GUEST_ID, { message: `must match ${GUEST_ID.source}` }),
  engine: z.literal("native").default("native"),
  driver: z.enum(["dir", "btrfs", "lvmthin", "zfs"]),
  /** dir driver only: `copy` stages a copy while stopped; `none` archives in place while stopped. */
  snapshot: z.enum(["snapshot", "copy", "none"]).optional(),
  volumes: z.array(volumeSchema).min(1),
  /** Per-guest quiesce timeout and policy; the agent-wide ones otherwise. */
  quiesceTimeoutMs: z.number().int().min(100).max(3_600_000).optional(),
  policy: z.enum(["fail", "crash-consistent"]).optional(),
  /** Per-guest archive compression: zstd level and worker threads (0: one per core); the agent-wide ones otherwise. */
  zstdLevel: z.number().int().min(1).max(19).optional(),
  zstdThreads: z.number().int().min(0).max(256).optional(),
  /** Per-guest bound of the snapshot step (the stacks are down meanwhile); the agent-wide one otherwise. */
  snapshotTimeoutMs: z.number().int().min(1_000).max(3_600_000).optional(),
});

export const agentConfigSchema = z
  .strictObject({
    /** Name of this node, as in Proxmox (`pve1`). */
    node: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9.-]{0,62}$/).default("localhost"),
    /** SQLite database and other state. */
    dataDir: absolutePath,
    /** Finished archives. */
    archiveDir: absolutePath,
    /** Staging copies of the dir driver (`snapshot: copy`). */
    stagingDir: absolutePath,
    /** Name prefix of everything the agent creates (snapshots, staging dirs, partial archives). */
    prefix: z
      .string()
      .regex(/^lull[a-z0-9-]{0,15}$/, { message: "must start with `lull` (max 19 characters of [a-z0-9-])" })
      .default("lull-"),
    listen: z
      .strictObject({
        /** TCP `host:port` of the network listener (controllers, with tokens); port 0 picks a free one. */
        address: z.string().min(1).default("127.0.0.1:7450"),
        /** Plain TCP instead of TLS on the network listener: tests only. Tokens are still required. */
        insecure: z.boolean().default(false),
        /** Unix socket for local operators (lullctl, root only: directory 0700, socket 0600); no token needed. */
        socket: absolutePath.max(100, { message: "must be at most 100 characters (unix socket path limit)" }).default(DEFAULT_SOCKET),
        /** More names (DNS names or IP addresses) for the server certificate, besides the node name, 127.0.0.1 and ::1. */
        names: z.array(certName).max(32).default([]),
        /**
         * Every connection is pinged this often and dropped when a ping is not answered within half
         * of it: a controller that stops answering loses its event stream, and the stack lease that
         * stream held, within 1.5× this (its lease then runs out after its TTL).
         */
        keepaliveMs: z.number().int().min(1_000).max(300_000).default(10_000),
      })
      .prefault({}),
    /**
     * Per-credential limits on the network listener (the local socket is not limited). The defaults
     * fit a busy node: one guest token shared by 50 stacks renews 50 leases every 5 s (10/s) and,
     * after an agent restart, reconnects 50 watch streams at once; per-stack tokens use a fraction.
     */
    limits: z
      .strictObject({
        registerStack: bucketSchema.prefault({ burst: 100, perSecond: 20 }),
        watchEvents: bucketSchema.prefault({ burst: 100, perSecond: 10 }),
        /** Open WatchEvents streams per credential. */
        maxWatchStreams: z.number().int().min(1).max(1_000).default(64),
        /** Open WatchEvents streams of every credential together (bounds the agent's memory). */
        maxWatchStreamsTotal: z.number().int().min(1).max(100_000).default(4_096),
      })
      .prefault({}),
    quiesce: z
      .strictObject({
        timeoutMs: z.number().int().min(100).max(3_600_000).default(120_000),
        policy: z.enum(["fail", "crash-consistent"]).default("fail"),
      })
      .prefault({}),
    /** Lease of a registered stack: a controller re-registers before it runs out. */
    leaseTtlMs: z.number().int().min(500).max(600_000).default(15_000),
    /** Shutdown: how long running jobs get to settle after SIGTERM. */
    shutdownGraceMs: z.number().int().min(0).max(600_000).default(10_000),
    zstdLevel: z.number().int().min(1).max(19).default(3),
    /** zstd worker threads of an archive; 0 (the default) is one per core (`zstd -T0`), 1 a single thread. */
    zstdThreads: z.number().int().min(0).max(256).default(0),
    /**
     * How long the native engine's snapshot step may take (the stacks are down meanwhile): a ZFS
     * snapshot waits for a txg sync, an LVM-thin one suspends the device, and either can hang on a
     * busy pool. Past it the job fails with LULL_E_SNAPSHOT_TIMEOUT and the stacks resume.
     */
    snapshotTimeoutMs: z.number().int().min(1_000).max(3_600_000).default(300_000),
    logLevel: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
    /** Each guest's engine: `native` (the default; the agent's own storage driver) or `vzdump` (Proxmox; the id is the vmid). */
    guests: z.array(z.discriminatedUnion("engine", [nativeGuestSchema, vzdumpGuestSchema])).default([]),
    /** The Proxmox side: vzdump and its hook, discovery, LVM-thin/ZFS drivers, crash cleanup (agent/PROXMOX.md). */
    pve: pveConfigSchema.prefault({}),
    /** Consistency groups: guests backed up as one (agent/src/groups/README.md). */
    groups: z.array(groupConfigSchema).default([]),
    /** How long ended jobs and their events stay in the job store (agent/src/retention/config.ts). */
    retention: retentionConfigSchema.prefault({}),
    /** Backup, verify and prune schedules, on this node or once per cluster (agent/src/schedules/README.md). */
    schedules: schedulesConfigSchema,
    /** App-level verification of restore points on ephemeral replicas (agent/src/verify/config.ts). */
    verify: verifyConfigSchema.prefault({}),
    /** Retention of restore points: PBS's keep options, per guest or group (agent/src/prune/config.ts). */
    prune: pruneConfigSchema.prefault({}),
    /** The Prometheus listener (agent/src/metrics/config.ts); off unless `metrics.address` is set. */
    metrics: metricsConfigSchema.prefault({}),
    /** Notification targets and matchers (agent/src/notify/config.ts); none by default. */
    notifications: notificationsConfigSchema.prefault({}),
    /** The status page on the metrics listener (agent/src/status/config.ts); on when that listener is. */
    status: statusConfigSchema.prefault({}),
    /** The cluster listener: node-to-node calls with node credentials (agent/src/cluster/config.ts, agent/SECURITY.md); off by default. */
    cluster: clusterConfigSchema.prefault({}),
    /** Crash tests only (env LULL_AGENT_FAILPOINT): `pause-in:<phase>` stops a run right after entering that phase. */
    failpoint: z
      .string()
      .regex(/^pause-in:(queued|quiescing|snapshotting|snapshotted|archiving|done|failed|cancelled)$/, {
        message: "must be pause-in:<phase>",
      })
      .optional(),
  })
  .superRefine((cfg, ctx) => {
    const seen = new Set<string>();
    cfg.guests.forEach((g, i) => {
      if (seen.has(g.id)) ctx.addIssue({ code: "custom", path: ["guests", i, "id"], message: `duplicate guest id ${g.id}` });
      seen.add(g.id);
      if (g.engine !== "native") return;
      const names = new Set<string>();
      g.volumes.forEach((v, j) => {
        if (names.has(v.name)) {
          ctx.addIssue({ code: "custom", path: ["guests", i, "volumes", j, "name"], message: `duplicate volume ${v.name}` });
        }
        names.add(v.name);
      });
      if (g.snapshot !== undefined && g.driver !== "dir" && g.snapshot !== "snapshot") {
        ctx.addIssue({ code: "custom", path: ["guests", i, "snapshot"], message: `driver ${g.driver} only takes snapshots` });
      }
    });
    for (const issue of groupConfigIssues(cfg.groups, cfg.guests, { node: cfg.node, clusterEnabled: cfg.cluster.enabled })) ctx.addIssue({ code: "custom", ...issue });
    const groupIds = cfg.groups.map((g) => g.id);
    for (const issue of pruneConfigIssues(cfg.prune, cfg.guests.map((g) => g.id), cfg.groups)) ctx.addIssue({ code: "custom", ...issue });
    const verifyFreshMs = cfg.verify.outdatedAfterDays * 86_400_000;
    for (const issue of scheduleConfigIssues(cfg.schedules, cfg.guests.map((g) => g.id), groupIds, Date.now(), verifyFreshMs)) ctx.addIssue({ code: "custom", ...issue });
    cfg.verify.checks.forEach((c, i) => {
      if (!seen.has(c.guest)) ctx.addIssue({ code: "custom", path: ["verify", "checks", i, "guest"], message: `guest ${c.guest} is not configured under guests` });
    });
  });

export type AgentConfig = z.output<typeof agentConfigSchema>;
/** A configured guest: native (`driver`, `volumes`) or vzdump (a Proxmox vmid). */
export type GuestConfig = AgentConfig["guests"][number];
export type NativeGuestConfig = Extract<GuestConfig, { engine: "native" }>;
export type VzdumpGuestConfig = Extract<GuestConfig, { engine: "vzdump" }>;
export type VolumeConfig = NativeGuestConfig["volumes"][number];

export function isNativeGuest(guest: GuestConfig): guest is NativeGuestConfig {
  return guest.engine === "native";
}

/** Which point-in-time copy a guest's driver makes (vzdump: it asks for a snapshot; vzdump may fall back). */
export function snapshotKind(guest: GuestConfig): "snapshot" | "copy" | "none" {
  if (guest.engine !== "native") return "snapshot";
  if (guest.driver === "dir") return guest.snapshot === "none" ? "none" : "copy";
  return "snapshot";
}

export interface AgentFlags {
  config?: string | undefined;
  listen?: string | undefined;
  socket?: string | undefined;
  dataDir?: string | undefined;
  logLevel?: string | undefined;
  failpoint?: string | undefined;
}

/** Environment variables the agent reads (here only). */
export function flagsFromEnv(env: NodeJS.ProcessEnv): AgentFlags {
  return {
    config: env.LULL_AGENT_CONFIG,
    listen: env.LULL_AGENT_LISTEN,
    socket: env.LULL_AGENT_SOCKET,
    logLevel: env.LULL_LOG_LEVEL,
    failpoint: env.LULL_AGENT_FAILPOINT,
  };
}

export function loadAgentConfig(flags: AgentFlags, env: NodeJS.ProcessEnv = {}): Readonly<AgentConfig> {
  const fromEnv = flagsFromEnv(env);
  const layer = (f: AgentFlags) => ({
    ...(f.listen !== undefined || f.socket !== undefined ? { listen: { address: f.listen, socket: f.socket } } : {}),
    ...(f.dataDir !== undefined ? { dataDir: f.dataDir } : {}),
    ...(f.logLevel !== undefined ? { logLevel: f.logLevel } : {}),
    ...(f.failpoint !== undefined ? { failpoint: f.failpoint } : {}),
  });
  return loadConfig(agentConfigSchema, { file: flags.config ?? fromEnv.config, env: layer(fromEnv), flags: layer(flags) });
}

/** A path with its symlinks resolved (as far as it exists). */
function realPath(path: string): string {
  try {
    return realpathSync(path);
  } catch {
    return resolve(path);
  }
}

function nested(a: string, b: string): boolean {
  const rel = relative(a, b);
  return rel === "" || (!rel.startsWith("..") && !isAbsolute(rel));
}

/**
 * Checks the configured paths once their symlinks are resolved: the agent's own roots (dataDir with
 * its keys and tokens, archiveDir, stagingDir) and the guests' volumes never contain one another, so
 * a backup cannot read the agent's secrets or its own archives, and `archiveDir/<guest>` is a real
 * directory (not a symlink leading elsewhere). Throws LULL_E_CONFIG_INVALID naming the key.
 */
export function checkConfigPaths(config: Readonly<AgentConfig>): void {
  const roots = (["dataDir", "archiveDir", "stagingDir"] as const).map((key) => ({ key, path: realPath(config[key]) }));
  const fail = (key: string, message: string) => {
    throw new LullError("LULL_E_CONFIG_INVALID", `${key}: ${message}`);
  };
  for (const [i, a] of roots.entries()) {
    for (const b of roots.slice(i + 1)) {
      if (nested(a.path, b.path) || nested(b.path, a.path)) fail(b.key, `${b.path} overlaps ${a.key} (${a.path})`);
    }
  }
  config.guests.forEach((guest, g) => {
    if (guest.engine !== "native") return;
    guest.volumes.forEach((volume, v) => {
      const path = realPath(volume.path);
      for (const root of roots) {
        if (nested(path, root.path) || nested(root.path, path)) {
          fail(`guests.${g}.volumes.${v}.path`, `${path} overlaps ${root.key} (${root.path})`);
        }
      }
    });
    const perGuest = join(config.archiveDir, guest.id);
    const st = (() => {
      try {
        return lstatSync(perGuest);
      } catch {
        return undefined;
      }
    })();
    if (st && !st.isDirectory()) fail("archiveDir", `${perGuest} exists and is not a directory (a symlink is refused)`);
  });
}
