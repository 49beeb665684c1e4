// The agent's configuration: flags > environment > file > defaults, validated once, frozen.
// Nothing else in the agent reads process.env.
import { isAbsolute } from "node:path";
import { GUEST_ID, loadConfig, z } from "@lull/shared";

const absolutePath = z.string().min(1).refine(isAbsolute, { message: "must be an absolute path" });
const name = z.string().regex(/^[a-z0-9][a-z0-9_-]{0,31}$/, { message: "must match ^[a-z0-9][a-z0-9_-]{0,31}$" });

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
        /** TCP `host:port` of the network listener; port 0 picks a free one. */
        address: z.string().min(1).default("127.0.0.1:7450"),
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
    logLevel: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
    guests: z.array(nativeGuestSchema).default([]),
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
  });

export type AgentConfig = z.output<typeof agentConfigSchema>;
export type GuestConfig = AgentConfig["guests"][number];
export type VolumeConfig = GuestConfig["volumes"][number];

/** Which point-in-time copy a guest's driver makes. */
export function snapshotKind(guest: GuestConfig): "snapshot" | "copy" | "none" {
  if (guest.driver === "dir") return guest.snapshot === "none" ? "none" : "copy";
  return "snapshot";
}

export interface AgentFlags {
  config?: string | undefined;
  listen?: string | undefined;
  dataDir?: string | undefined;
  logLevel?: string | undefined;
  failpoint?: string | undefined;
}

/** Environment variables the agent reads (here only). */
export function flagsFromEnv(env: NodeJS.ProcessEnv): AgentFlags {
  return {
    config: env.LULL_AGENT_CONFIG,
    listen: env.LULL_AGENT_LISTEN,
    logLevel: env.LULL_LOG_LEVEL,
    failpoint: env.LULL_AGENT_FAILPOINT,
  };
}

export function loadAgentConfig(flags: AgentFlags, env: NodeJS.ProcessEnv = {}): Readonly<AgentConfig> {
  const fromEnv = flagsFromEnv(env);
  const layer = (f: AgentFlags) => ({
    ...(f.listen !== undefined ? { listen: { address: f.listen } } : {}),
    ...(f.dataDir !== undefined ? { dataDir: f.dataDir } : {}),
    ...(f.logLevel !== undefined ? { logLevel: f.logLevel } : {}),
    ...(f.failpoint !== undefined ? { failpoint: f.failpoint } : {}),
  });
  return loadConfig(agentConfigSchema, { file: flags.config ?? fromEnv.config, env: layer(fromEnv), flags: layer(flags) });
}
