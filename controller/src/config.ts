// The controller's configuration: flags > environment > file > defaults, validated once, frozen.
// This is the only file of the controller that reads process.env (through `loadControllerConfig`).
import { hostname } from "node:os";
import { isAbsolute } from "node:path";
import { CONTROLLER_ID, GUEST_ID, STACK_NAME, TOKEN_PATTERN, loadConfig, normalizeFingerprint, z } from "@lull/shared";
import { quiesceSchema } from "./quiesce/schema.js";

const absolutePath = z.string().min(1).refine(isAbsolute, { message: "must be an absolute path" });
const argv = z.array(z.string().min(1)).min(1, { message: "must name a command (a non-empty argv array)" });
const ms = (min: number, max: number) => z.number().int().min(min).max(max);
/** The shape of a token of `lull-agent token create` (its checks are the agent's). */

/** Stops/starts/checks the stack with user commands; `status` exits 0 when the stack runs. */
const commandDriverSchema = z.strictObject({
  type: z.literal("command"),
  start: argv,
  stop: argv,
  status: argv,
  /** For `quiesce.strategy: "pause"`: freeze / thaw the stack's processes. */
  pause: argv.optional(),
  unpause: argv.optional(),
  timeoutMs: ms(100, 3_600_000).default(60_000),
  /** How long to wait for `status` to confirm the stack stopped / came up after the command. */
  verifyTimeoutMs: ms(0, 600_000).default(10_000),
});

/** A Docker Compose v2 project: `docker compose --project-name P [--file F]... stop|start|ps`. */
const composeDriverSchema = z.strictObject({
  type: z.literal("compose"),
  project: z.string().regex(/^[a-z0-9][a-z0-9_-]{0,63}$/, { message: "must be a compose project name ([a-z0-9_-])" }),
  files: z.array(absolutePath).default([]),
  docker: z.string().min(1).default("docker"),
  timeoutMs: ms(100, 3_600_000).default(120_000),
  verifyTimeoutMs: ms(0, 600_000).default(10_000),
});

/** How the controller reaches its node's agent: address, credential (a token of its guest) and TLS trust. */
const agentLinkSchema = z
  .strictObject({
    /** `host:port` or `unix:///path` of the node's lull-agent. */
    address: z.string().min(1).default("127.0.0.1:7450"),
    /** Deadline of each unary call to the agent. */
    callTimeoutMs: ms(100, 120_000).default(5_000),
    /** The token `lull-agent token create --guest <id> [--stack <name>]` printed (prefer `tokenFile`). */
    token: z.string().regex(TOKEN_PATTERN, { message: "must be a token as `lull-agent token create` prints it" }).optional(),
    /** A file holding that token (mode 0600), read at start. */
    tokenFile: absolutePath.optional(),
    /** Trust in the agent's TLS certificate: its CA fingerprint (`lull-agent cert fingerprint`) and/or a CA file. */
    tls: z
      .strictObject({
        fingerprint: z
          .string()
          .transform((v, ctx) => {
            try {
              return normalizeFingerprint(v);
            } catch {
              ctx.addIssue({ code: "custom", message: "must be a SHA-256 fingerprint like sha256:AB:CD:… (32 hex pairs)" });
              return z.NEVER;
            }
          })
          .optional(),
        ca: absolutePath.optional(),
      })
      .refine((t) => t.fingerprint !== undefined || t.ca !== undefined, { message: "give fingerprint or ca (or both)" })
      .optional(),
    /** Plain TCP to a TCP address even with a token: tests only. */
    insecure: z.boolean().default(false),
  })
  .superRefine((a, ctx) => {
    if (a.token !== undefined && a.tokenFile !== undefined) {
      ctx.addIssue({ code: "custom", path: ["tokenFile"], message: "give token or tokenFile, not both" });
    }
    const overTcp = !a.address.startsWith("unix:");
    if (overTcp && (a.token !== undefined || a.tokenFile !== undefined) && a.tls === undefined && !a.insecure) {
      ctx.addIssue({
        code: "custom",
        path: ["tls"],
        message: "a token is only sent over TLS: set agent.tls.fingerprint (`lull-agent cert fingerprint` on the node) or agent.tls.ca",
      });
    }
    if (a.tls !== undefined && a.insecure) ctx.addIssue({ code: "custom", path: ["insecure"], message: "insecure contradicts tls" });
  });

export const FAILPOINTS = ["after-marker", "after-stop", "before-resume"] as const;
export type Failpoint = (typeof FAILPOINTS)[number];

export const controllerConfigSchema = z
  .strictObject({
    guestId: z.string().regex(GUEST_ID, { message: `must match ${GUEST_ID.source}` }),
    stack: z.string().regex(STACK_NAME, { message: `must match ${STACK_NAME.source}` }),
    /** Unique per controller process; the default is `<hostname>-<pid>`. */
    controllerId: z
      .string()
      .regex(CONTROLLER_ID, { message: `must match ${CONTROLLER_ID.source}` })
      .default(() => defaultControllerId()),
    agent: agentLinkSchema.prefault({}),
    /** Where the crash-safe marker lives (must survive a restart of the controller). */
    markerDir: absolutePath.default("/var/lib/lull-controller"),
    /** The stack runs again at most this long after it was stopped, whatever the agent does. */
    resumeDeadlineMs: ms(100, 86_400_000).default(300_000),
    /**
     * Start the stack at least this long before the resume deadline when nothing else resumed it,
     * so it runs again by the deadline (default: min(10 s, a quarter of resumeDeadlineMs); raised to
     * twice the longest resume measured; at most half of resumeDeadlineMs).
     */
    resumeLeadMs: ms(0, 43_200_000).optional(),
    /** Polling interval while the event stream is broken, and the resync tick while a job is tracked. */
    pollIntervalMs: ms(20, 600_000).default(2_000),
    leaseTtlMs: ms(500, 600_000).default(15_000),
    /** `early`: resume at `snapshotted`; `end`: resume only at the terminal phase (for comparison). */
    resume: z.enum(["early", "end"]).default("early"),
    driver: z.discriminatedUnion("type", [commandDriverSchema, composeDriverSchema]),
    /** How the stack is held for the snapshot and the steps around it (./quiesce/schema.ts). */
    quiesce: quiesceSchema.prefault({}),
    logLevel: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
    /** Prometheus metrics on a listener of their own (`host:port`, plain HTTP, GET /metrics); off unless set. */
    metrics: z
      .strictObject({
        address: z.string().regex(/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/, { message: "must be host:port, e.g. 127.0.0.1:9751" }).optional(),
      })
      .prefault({}),
    /** Crash tests only (env LULL_CONTROLLER_FAILPOINT): pause for good at that point. */
    failpoint: z.enum(FAILPOINTS).optional(),
  })
  .superRefine((c, ctx) => {
    if (c.resumeLeadMs !== undefined && c.resumeLeadMs > c.resumeDeadlineMs / 2) {
      ctx.addIssue({ code: "custom", path: ["resumeLeadMs"], message: `must be at most half of resumeDeadlineMs (${Math.floor(c.resumeDeadlineMs / 2)} ms)` });
    }
    const d = c.driver;
    if (c.quiesce.strategy === "pause" && d.type === "command" && (d.pause === undefined || d.unpause === undefined)) {
      ctx.addIssue({ code: "custom", path: ["quiesce", "strategy"], message: "pause needs driver.pause and driver.unpause with the command driver" });
    }
  });

export type ControllerConfig = z.output<typeof controllerConfigSchema>;
export type DriverConfig = ControllerConfig["driver"];
export type CommandDriverConfig = Extract<DriverConfig, { type: "command" }>;
export type ComposeDriverConfig = Extract<DriverConfig, { type: "compose" }>;

export interface ControllerFlags {
  config?: string | undefined;
  logLevel?: string | undefined;
}

/** The environment variables the controller reads, and nothing else. */
export interface ControllerEnv {
  LULL_CONTROLLER_CONFIG?: string | undefined;
  LULL_CONTROLLER_GUEST?: string | undefined;
  LULL_CONTROLLER_STACK?: string | undefined;
  LULL_CONTROLLER_AGENT?: string | undefined;
  LULL_CONTROLLER_TOKEN_FILE?: string | undefined;
  LULL_CONTROLLER_AGENT_FINGERPRINT?: string | undefined;
  LULL_CONTROLLER_MARKER_DIR?: string | undefined;
  LULL_CONTROLLER_FAILPOINT?: string | undefined;
  LULL_LOG_LEVEL?: string | undefined;
}

/** `<hostname>-<pid>`, squeezed into the controller id pattern. */
export function defaultControllerId(host: string = hostname(), pid: number = process.pid): string {
  const cleaned = host.replace(/[^A-Za-z0-9_.:-]/g, "-").replace(/^[^A-Za-z0-9]+/, "") || "controller";
  const suffix = `-${pid}`;
  return cleaned.slice(0, 64 - suffix.length) + suffix;
}

function envLayer(env: ControllerEnv): Record<string, unknown> {
  return {
    guestId: env.LULL_CONTROLLER_GUEST,
    stack: env.LULL_CONTROLLER_STACK,
    agent: {
      address: env.LULL_CONTROLLER_AGENT,
      tokenFile: env.LULL_CONTROLLER_TOKEN_FILE || undefined,
      ...(env.LULL_CONTROLLER_AGENT_FINGERPRINT ? { tls: { fingerprint: env.LULL_CONTROLLER_AGENT_FINGERPRINT } } : {}),
    },
    markerDir: env.LULL_CONTROLLER_MARKER_DIR,
    failpoint: env.LULL_CONTROLLER_FAILPOINT || undefined,
    logLevel: env.LULL_LOG_LEVEL,
  };
}

/** Loads the controller's configuration; throws LullError(LULL_E_CONFIG_INVALID) naming the key. */
export function loadControllerConfig(
  flags: ControllerFlags,
  env: ControllerEnv = process.env,
): Readonly<ControllerConfig> {
  return loadConfig(controllerConfigSchema, {
    file: flags.config ?? env.LULL_CONTROLLER_CONFIG,
    env: envLayer(env),
    flags: { logLevel: flags.logLevel },
  });
}
