// The `verify` key of the agent's configuration: which stack is checked how, on an ephemeral
// replica of each new restore point (README "Restore and verify").
//
//   verify: {
//     checks: [
//       { guest: "app1", stack: "shop",
//         check: { type: "postgres", dataDir: "db/pgdata", queries: ["SELECT count(*) FROM orders"] } },
//       { guest: "app1", stack: "files", check: { type: "command", argv: ["/usr/local/bin/check-files"] } }
//     ],
//     outdatedAfterDays: 30, staleAfterDays: 7, retryFailedAfterHours: 0, timeoutMs: 600000
//   }
//
// `dataDir` is a path inside the replica: `<volume name>/<path in the volume>`, the archive's layout.
import { isAbsolute, normalize } from "node:path";
import { GUEST_ID, z } from "@lull/shared";

const insidePath = z
  .string()
  .min(1)
  .refine((p) => !isAbsolute(p) && !normalize(p).startsWith("..") && normalize(p) !== ".", {
    message: "must be a relative path inside the replica (<volume>/<path>), without ..",
  });

const postgresCheck = z.strictObject({
  type: z.literal("postgres"),
  /** The data directory inside the replica: `<volume name>/<path in the volume>`. */
  dataDir: insidePath,
  /** SQL run one by one after the server opened (a row count, `amcheck`); any error fails the check. */
  queries: z.array(z.string().min(1).max(10_000)).max(50).default([]),
  /** Database the queries run in. */
  database: z.string().min(1).max(63).default("postgres"),
  /** The OS user PostgreSQL runs as (it refuses root); the replica is handed to it. */
  user: z.string().regex(/^[a-z_][a-z0-9_-]{0,31}$/).default("postgres"),
  /** PostgreSQL's bin directory; the newest under /usr/lib/postgresql otherwise. */
  binDir: z.string().refine(isAbsolute, { message: "must be an absolute path" }).optional(),
  /** Longest the server may take to open. */
  startTimeoutMs: z.number().int().min(1_000).max(3_600_000).default(120_000),
});

const commandCheck = z.strictObject({
  type: z.literal("command"),
  /** The check's argv (no shell); LULL_REPLICA names the replica's root, exit 0 passes. */
  argv: z.array(z.string().min(1)).min(1),
});

export const verifyCheckSchema = z.discriminatedUnion("type", [postgresCheck, commandCheck]);

export const verifyConfigSchema = z.strictObject({
  checks: z
    .array(
      z.strictObject({
        guest: z.string().regex(GUEST_ID, { message: `must match ${GUEST_ID.source}` }),
        stack: z.string().regex(/^[a-z0-9][a-z0-9_.-]{0,62}$/, { message: "must be a stack name" }),
        check: verifyCheckSchema,
      }),
    )
    .default([]),
  /** A point's passed verification counts for this long; then the stack's newest point is verified again (PBS's outdated-after). */
  outdatedAfterDays: z.number().int().min(1).max(36_500).default(30),
  /**
   * A checked stack whose newest passed verification is older than this (or, never verified, whose
   * guest's first point is) is stale: told once per episode (notification `verification-stale`).
   * Keep it equal to the threshold of `LullVerificationStale` in ops/alert-rules.yaml (7 days).
   */
  staleAfterDays: z
    .number({ message: "must be a number of days (default 7)" })
    .int({ message: "must be a whole number of days (default 7)" })
    .min(1, { message: "must be at least 1 day (default 7, as LullVerificationStale)" })
    .max(36_500, { message: "must be at most 36500 days" })
    .default(7),
  /** A failed verification is tried again after this long; 0 never (a newer point is verified instead). */
  retryFailedAfterHours: z.number().int().min(0).max(100_000).default(0),
  /** Longest one verification (restore + check) may take before it fails and its replica is torn down. */
  timeoutMs: z.number().int().min(1_000).max(24 * 3_600_000).default(600_000),
  /** Where replicas are made (`<prefix>verify-<run>`); `<stagingDir>/verify` otherwise. Its parents must be searchable by a check's user. */
  scratchDir: z.string().refine(isAbsolute, { message: "must be an absolute path" }).optional(),
  /** Spare ports for the replicas' servers (each names the server's private socket). */
  ports: z.strictObject({ from: z.number().int().min(1024).max(65535), to: z.number().int().min(1024).max(65535) }).default({ from: 55400, to: 55499 }),
});

export type VerifyConfig = z.output<typeof verifyConfigSchema>;
export type VerifyCheck = z.output<typeof verifyCheckSchema>;
export type PostgresCheck = Extract<VerifyCheck, { type: "postgres" }>;
export type CommandCheck = Extract<VerifyCheck, { type: "command" }>;
