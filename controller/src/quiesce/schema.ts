// The `quiesce` section of the controller's configuration: how the stack is held while the snapshot
// is taken (strategy) and the user's steps around it. Validated with the rest of the config in
// ../config.ts; the model is described in ./quiescer.ts and controller/README.md.
import { isAbsolute } from "node:path";
import { z } from "@lull/shared";

const argv = z.array(z.string().min(1)).min(1, { message: "must name a command (a non-empty argv array)" });
const ms = (min: number, max: number) => z.number().int().min(min).max(max);
const stepName = z
  .string()
  .regex(/^[A-Za-z0-9_.:-]{1,64}$/, { message: "must be 1-64 characters of [A-Za-z0-9_.:-]" })
  .optional();
const oneLine = (max: number) =>
  z
    .string()
    .min(1)
    .max(max)
    // eslint-disable-next-line no-control-regex
    .regex(/^[^\x00-\x1f\x7f]*$/, { message: "must be one line without control characters" });

function compiles(source: string): boolean {
  try {
    new RegExp(source, "m");
    return true;
  } catch {
    return false;
  }
}
const pattern = z.string().min(1).refine(compiles, { message: "must be a valid regular expression" });

/** A one-shot command: argv, no shell, killed at `timeoutMs`; exit 0 is success. */
export const commandStepSchema = z.strictObject({
  type: z.literal("command"),
  name: stepName,
  argv,
  timeoutMs: ms(100, 3_600_000).default(30_000),
});

/**
 * A long-lived client whose session holds the quiesce (a database session): `argv` is spawned,
 * `start` is written to its stdin, and the pre step is done when its stdout matches `ready`
 * (multi-line regex). The process stays open while the stack is held; at resume `stop` is written
 * and the step ends when stdout matches `done`; then stdin is closed.
 */
export const sessionStepSchema = z.strictObject({
  type: z.literal("session"),
  name: stepName,
  argv,
  start: z.string().min(1),
  ready: pattern,
  stop: z.string().min(1),
  done: pattern,
  /** Added to the client's environment. */
  env: z.record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/), z.string()).default({}),
  /** From spawning the client to `ready`. */
  timeoutMs: ms(100, 3_600_000).default(60_000),
  /** From writing `stop` to `done`. */
  stopTimeoutMs: ms(100, 3_600_000).default(60_000),
});

/**
 * PostgreSQL's session-scoped backup mode through psql: `pg_backup_start(label, fast)` (≥ 15; before:
 * non-exclusive `pg_start_backup`) at quiesce, `pg_backup_stop(wait_for_archive)` at resume.
 */
export const postgresStepSchema = z.strictObject({
  type: z.literal("postgres"),
  name: stepName,
  /** The psql command and its connection options, e.g. ["psql", "-h", "/run/postgresql", "-U", "backup", "-d", "app"]. */
  psql: argv,
  /** The backup label (the job id is appended). */
  label: oneLine(200).default("lull"),
  /** Request an immediate checkpoint rather than a spread one. */
  fast: z.boolean().default(true),
  /** pg_backup_stop waits until the WAL it needs is archived (when archiving is on). */
  waitForArchive: z.boolean().default(true),
  /** application_name of the session (PGAPPNAME), so it can be found in pg_stat_activity. */
  applicationName: oneLine(63).default("lull-controller"),
  /** Where to write the backup_label content pg_backup_stop returns (a file beside the backups). */
  labelFile: z.string().min(1).refine(isAbsolute, { message: "must be an absolute path" }).optional(),
  timeoutMs: ms(100, 3_600_000).default(60_000),
  stopTimeoutMs: ms(100, 3_600_000).default(60_000),
});

export const preStepSchema = z.discriminatedUnion("type", [commandStepSchema, sessionStepSchema, postgresStepSchema]);

export const QUIESCE_STRATEGIES = ["stop", "pause", "hooks"] as const;

export const quiesceSchema = z
  .strictObject({
    /** `stop`: stop/start the stack; `pause`: freeze/thaw it; `hooks`: leave it running, only the steps. */
    strategy: z.enum(QUIESCE_STRATEGIES).default("stop"),
    /** Run in order before the stack is stopped/paused; the first failure refuses the quiesce. */
    pre: z.array(preStepSchema).max(16).default([]),
    /** Run in order after the stack runs again (and the sessions of `pre` ended) — always. */
    post: z.array(commandStepSchema).max(16).default([]),
  })
  .superRefine((q, ctx) => {
    if (q.strategy === "hooks" && q.pre.length === 0) {
      ctx.addIssue({ code: "custom", path: ["pre"], message: "strategy hooks needs at least one pre step" });
    }
    const names = new Set<string>();
    [...q.pre, ...q.post].forEach((step) => {
      if (step.name === undefined) return;
      if (names.has(step.name)) ctx.addIssue({ code: "custom", path: ["pre"], message: `step name ${step.name} is used twice` });
      names.add(step.name);
    });
  });

export type QuiesceConfig = z.output<typeof quiesceSchema>;
export type QuiesceStrategy = QuiesceConfig["strategy"];
export type PreStepConfig = z.output<typeof preStepSchema>;
export type CommandStepConfig = z.output<typeof commandStepSchema>;
export type SessionStepConfig = z.output<typeof sessionStepSchema>;
export type PostgresStepConfig = z.output<typeof postgresStepSchema>;
