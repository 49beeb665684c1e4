// The user's quiesce steps, built from the configuration: one-shot commands (pre or post) and
// session steps (a client whose open session holds the quiesce until resume). Every step has an
// explicit timeout and runs its command from an argv array, never through a shell. A step that
// fails throws LullError(LULL_E_COMMAND_FAILED) whose message says what happened.
import type { CommandRunner, Launcher, Logger } from "@lull/shared";
import { LullError, createExecaLauncher, createExecaRunner } from "@lull/shared";
import { runChecked } from "../stacks/checked-command.js";
import { ClientSession, type SessionSpec } from "./client-session.js";
import { postgresSession, writeLabelFile } from "./postgres.js";
import type { CommandStepConfig, PreStepConfig, QuiesceConfig, SessionStepConfig } from "./schema.js";

export type StepFields = Record<string, string | number | boolean | null>;

export interface StepContext {
  /** The job the quiesce is for (undefined: resuming after a corrupt marker). */
  jobId: string | undefined;
  stack: string;
  log: Logger;
  signal?: AbortSignal | undefined;
  /** Why the stack is resumed (post steps only): snapshotted, terminal, deadline, ... */
  cause?: string | undefined;
}

/** What a session pre step leaves open until resume. */
export type EndStep = () => Promise<StepFields>;

export interface PreStep {
  readonly name: string;
  readonly kind: PreStepConfig["type"];
  readonly holdsSession: boolean;
  /** Runs the step; a session step resolves with `end`, which must be called at resume. */
  run(ctx: StepContext): Promise<{ fields: StepFields; end?: EndStep | undefined }>;
}

export interface PostStep {
  readonly name: string;
  readonly kind: "command";
  run(ctx: StepContext): Promise<StepFields>;
}

/** Environment a step's command sees besides the controller's own. */
function stepEnv(ctx: StepContext, hook: "pre" | "post"): Record<string, string> {
  return { LULL_JOB_ID: ctx.jobId ?? "", LULL_STACK: ctx.stack, LULL_HOOK: hook, ...(ctx.cause ? { LULL_RESUME_CAUSE: ctx.cause } : {}) };
}

/** How steps run their commands: one-shot ones on the runner, session clients on the launcher. */
export interface StepExec {
  runner: CommandRunner;
  launcher: Launcher;
}

function defaultExec(): StepExec {
  return { runner: createExecaRunner(), launcher: createExecaLauncher() };
}

async function runCommandStep(runner: CommandRunner, step: CommandStepConfig, ctx: StepContext, hook: "pre" | "post"): Promise<StepFields> {
  await runChecked(runner, step.argv, { timeoutMs: step.timeoutMs, signal: ctx.signal, env: stepEnv(ctx, hook) }, "LULL_E_COMMAND_FAILED");
  return { exitCode: 0 };
}

/** Opens a session; a client that dies while held is logged at once (its outcome is reported at resume). */
async function openSession(launcher: Launcher, name: string, spec: SessionSpec, ctx: StepContext): Promise<{ session: ClientSession; output: string }> {
  return ClientSession.open(launcher, spec, ctx.signal, (exit, stderr) => {
    ctx.log.warn({ jobId: ctx.jobId ?? null, step: name, exitCode: exit.exitCode ?? null, signal: exit.signal ?? null, stderr }, "quiesce session ended early");
  });
}

function sessionStep(launcher: Launcher, name: string, step: SessionStepConfig): PreStep {
  return {
    name,
    kind: "session",
    holdsSession: true,
    async run(ctx) {
      const spec: SessionSpec = {
        argv: step.argv,
        env: { ...stepEnv(ctx, "pre"), ...step.env },
        start: step.start,
        ready: new RegExp(step.ready, "m"),
        timeoutMs: step.timeoutMs,
        stop: step.stop,
        done: new RegExp(step.done, "m"),
        stopTimeoutMs: step.stopTimeoutMs,
      };
      const { session } = await openSession(launcher, name, spec, ctx);
      return { fields: {}, end: async () => (await session.close(), {}) };
    },
  };
}

function postgresStep(launcher: Launcher, name: string, step: Extract<PreStepConfig, { type: "postgres" }>): PreStep {
  return {
    name,
    kind: "postgres",
    holdsSession: true,
    async run(ctx) {
      const pg = postgresSession(step, ctx.jobId);
      const { session, output } = await openSession(launcher, name, pg.spec, ctx);
      let startLsn: string;
      try {
        startLsn = pg.parseStart(output).startLsn;
      } catch (err) {
        await session.kill();
        throw err;
      }
      const end: EndStep = async () => {
        const stopped = pg.parseStop(await session.close());
        if (step.labelFile !== undefined) {
          try {
            writeLabelFile(step.labelFile, stopped.labelFile);
          } catch (err) {
            throw new LullError("LULL_E_COMMAND_FAILED", `pg_backup_stop returned, but writing ${step.labelFile} failed: ${(err as Error).message}`);
          }
        }
        return { stopLsn: stopped.stopLsn, label: stopped.label, labelFile: step.labelFile ?? null, backupLabel: stopped.labelFile };
      };
      return { fields: { startLsn }, end };
    },
  };
}

export function buildPreSteps(config: QuiesceConfig, exec: StepExec = defaultExec()): PreStep[] {
  return config.pre.map((step, i): PreStep => {
    const name = step.name ?? `pre[${i}]:${step.type}`;
    switch (step.type) {
      case "command":
        return { name, kind: "command", holdsSession: false, run: async (ctx) => ({ fields: await runCommandStep(exec.runner, step, ctx, "pre") }) };
      case "session":
        return sessionStep(exec.launcher, name, step);
      case "postgres":
        return postgresStep(exec.launcher, name, step);
    }
  });
}

export function buildPostSteps(config: QuiesceConfig, runner: CommandRunner = createExecaRunner()): PostStep[] {
  return config.post.map((step, i) => ({
    name: step.name ?? `post[${i}]:command`,
    kind: "command",
    run: (ctx) => runCommandStep(runner, step, ctx, "post"),
  }));
}
