// One run of the write-isolation scenario, end to end with real processes: a guest `apps` whose
// three volumes are btrfs subvolumes, one writer per volume (sqlite, log, objects), a real
// lull-agent (native engine, btrfs driver) and, per stack, a real lull-controller that stops and
// restarts its writer. After the backup the archive is restored into a scratch dir and checked.
//
// `quiesce` picks how the stacks take part:
//   stop   — the controllers stop their writers (app-consistent, policy fail)
//   refuse — the controllers run but their stop fails, so they refuse; policy crash-consistent:
//            the writers never stop
//   none   — no controllers at all (no stacks registered); policy crash-consistent
// `snapshotDelayMs` delays every `btrfs subvolume snapshot` the agent runs (a shim first on its
// PATH), so the volumes are snapshotted one after another, well after the job's snapshot time.
import { mkdir } from "node:fs/promises";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { execa } from "execa";
import { QuiescePolicy, StackState, type Event, type Job } from "@lull/proto";
import { isTerminal } from "@lull/shared";
import { restoreArchive } from "../demo/restore-check.js";
import { installSlowCommand } from "../support/slow-command.js";
import {
  startAgent,
  startController,
  waitFor,
  type AgentProcess,
  type CommandDriver,
  type ControllerProcess,
  type LoopBtrfs,
} from "../support/index.js";
import { checkWriteIsolation, type ServiceEvidence, type Violation } from "./check.js";
import { readLedger, runFiles, type AckedRecord, type ServiceKind } from "./ledger.js";
import { readServiceContents } from "./services.js";

export const GUEST_ID = "apps";
/** Stack = volume = service name, and the kind of data its writer writes. */
export const SERVICES: ReadonlyArray<{ name: string; kind: ServiceKind }> = [
  { name: "db", kind: "sqlite" },
  { name: "journal", kind: "log" },
  { name: "objects", kind: "objects" },
];
const WRITER_CTL = fileURLToPath(new URL("./writer-ctl.js", import.meta.url));
const CTL_TIMEOUT_MS = 20_000;
const JOB_TIMEOUT_MS = 60_000;

export type QuiesceMode = "stop" | "refuse" | "none";

export interface ScenarioOptions {
  /** Scratch dir of this run (agent, ledgers, restore). */
  scratch: string;
  btrfs: LoopBtrfs;
  /** Directory on the btrfs for this run's subvolumes. */
  name: string;
  quiesce: QuiesceMode;
  snapshotDelayMs: number;
  /** Pause between two records of a writer; default 3 ms. */
  writerIntervalMs?: number;
  /** Acknowledged records each writer must have before the backup starts; default 30. */
  warmupRecords?: number;
  echo?: boolean;
}

export interface ScenarioResult {
  job: Job;
  /** The job's persisted events, `queued` to its end. */
  events: Event[];
  services: ServiceEvidence[];
  violations: Violation[];
  /** Each stack's controller (empty for quiesce `none`); already stopped. */
  controllers: Map<string, ControllerProcess>;
}

interface ServiceRun {
  name: string;
  kind: ServiceKind;
  dataDir: string;
  runDir: string;
}

async function writerCtl(verb: string, s: ServiceRun, intervalMs?: number): Promise<void> {
  const args = [WRITER_CTL, verb, s.kind, s.dataDir, s.runDir, ...(intervalMs !== undefined ? [String(intervalMs)] : [])];
  const r = await execa(process.execPath, args, { shell: false, reject: false, timeout: CTL_TIMEOUT_MS });
  if (r.exitCode !== 0) throw new Error(`writer-ctl ${verb} ${s.name} exited ${r.exitCode ?? r.signal}: ${String(r.stderr).trim()}`);
}

function driverFor(s: ServiceRun, quiesce: QuiesceMode, intervalMs: number): CommandDriver & { verifyTimeoutMs: number } {
  const ctl = (verb: string) => [process.execPath, WRITER_CTL, verb, s.kind, s.dataDir, s.runDir, String(intervalMs)];
  return {
    type: "command",
    start: ctl("start"),
    stop: ctl(quiesce === "refuse" ? "refuse-stop" : "stop"),
    status: ctl("status"),
    timeoutMs: CTL_TIMEOUT_MS,
    verifyTimeoutMs: 5_000,
  };
}

const ledgerOf = (s: ServiceRun): AckedRecord[] => readLedger(runFiles(s.runDir).ledger);

/** Runs the scenario; the processes it started are stopped (and a failure to stop is reported). */
export async function runIsolationScenario(o: ScenarioOptions): Promise<ScenarioResult> {
  const cleanups: Array<() => Promise<unknown>> = [];
  let result: ScenarioResult | undefined;
  let failure: unknown;
  try {
    result = await runScenario(o, cleanups);
  } catch (err) {
    failure = err;
  }
  const cleanupErrors: string[] = [];
  for (const cleanup of cleanups.reverse()) {
    await cleanup().catch((err: unknown) => cleanupErrors.push((err as Error).message));
  }
  if (failure !== undefined) throw failure;
  if (cleanupErrors.length > 0 || result === undefined) throw new Error(`cleanup failed: ${cleanupErrors.join("; ")}`);
  return result;
}

interface Running {
  agent: AgentProcess;
  services: ServiceRun[];
  controllers: Map<string, ControllerProcess>;
}

/** Subvolumes, the agent (with the slow `btrfs` on its PATH), writers and controllers. */
async function setUp(o: ScenarioOptions, intervalMs: number, cleanups: Array<() => Promise<unknown>>): Promise<Running> {
  const policy = o.quiesce === "stop" ? "fail" : "crash-consistent";
  const shim = await installSlowCommand({
    binDir: join(o.scratch, "bin"),
    command: "btrfs",
    delayMs: o.snapshotDelayMs,
    whenArgsStartWith: ["subvolume", "snapshot"],
  });
  await mkdir(join(o.btrfs.mountPoint, o.name));
  const services: ServiceRun[] = [];
  for (const { name, kind } of SERVICES) {
    const runDir = join(o.scratch, "run", name);
    await mkdir(runDir, { recursive: true });
    services.push({ name, kind, dataDir: await o.btrfs.createSubvolume(join(o.name, name)), runDir });
  }
  const agent = await startAgent({
    dir: join(o.scratch, "agent"),
    guests: [{ id: GUEST_ID, driver: "btrfs", volumes: services.map((s) => ({ name: s.name, path: s.dataDir })), policy }],
    config: { quiesce: { timeoutMs: 15_000, policy }, leaseTtlMs: 5_000 },
    env: shim.env(),
    ...(o.echo !== undefined ? { echo: o.echo } : {}),
  });
  cleanups.push(() => agent.stop());
  for (const s of services) cleanups.push(() => writerCtl("stop", s)); // a no-op for one that never ran
  await allOrFirstError(services.map((s) => writerCtl("start", s, intervalMs)));
  const controllers = new Map<string, ControllerProcess>();
  if (o.quiesce === "none") return { agent, services, controllers };
  const started = await Promise.allSettled(
    services.map((s) =>
      startController({
        dir: join(o.scratch, "controllers"),
        guestId: GUEST_ID,
        stack: s.name,
        agent,
        resume: "early",
        driver: driverFor(s, o.quiesce, intervalMs),
        resumeDeadlineMs: 60_000,
        pollIntervalMs: 500,
        leaseTtlMs: 5_000,
        ...(o.echo !== undefined ? { echo: o.echo } : {}),
      }),
    ),
  );
  started.forEach((result, i) => {
    if (result.status !== "fulfilled") return;
    controllers.set(services[i]!.name, result.value);
    cleanups.push(() => result.value.stop());
  });
  await allOrFirstError(started.map((r) => (r.status === "fulfilled" ? Promise.resolve() : Promise.reject(r.reason))));
  return { agent, services, controllers };
}

/** Waits for every promise to settle (nothing left running), then rejects with the first error. */
async function allOrFirstError(promises: ReadonlyArray<Promise<unknown>>): Promise<void> {
  const failed = (await Promise.allSettled(promises)).find((r): r is PromiseRejectedResult => r.status === "rejected");
  if (failed) throw failed.reason;
}

/** Restores the job's archive and reads every service from it (none restored without an archive). */
async function gatherEvidence(job: Job, services: readonly ServiceRun[], restoreDir: string): Promise<ServiceEvidence[]> {
  if (job.archivePath) await restoreArchive(job.archivePath, restoreDir);
  return services.map((s) => {
    const dir = join(restoreDir, s.name);
    const contents = job.archivePath && existsSync(dir) ? readServiceContents(s.kind, dir) : undefined;
    return { service: s.name, restored: contents?.records, problems: contents?.problems ?? [], acked: ledgerOf(s) };
  });
}

async function runScenario(o: ScenarioOptions, cleanups: Array<() => Promise<unknown>>): Promise<ScenarioResult> {
  const intervalMs = o.writerIntervalMs ?? 3;
  const { agent, services, controllers } = await setUp(o, intervalMs, cleanups);
  const warmup = o.warmupRecords ?? 30;
  for (const s of services) await waitFor(`${warmup} records of ${s.name}`, () => ledgerOf(s).length >= warmup, 10_000);

  const client = agent.client();
  const job = await client.backup(GUEST_ID, JOB_TIMEOUT_MS, {
    policy: o.quiesce === "stop" ? QuiescePolicy.QUIESCE_POLICY_FAIL : QuiescePolicy.QUIESCE_POLICY_CRASH_CONSISTENT,
  });
  const events = await client.collectEvents({ guestId: GUEST_ID, jobId: job.id }, (e) => isTerminal(e.phase), 10_000);
  let settled = job;
  if (o.quiesce === "stop") {
    for (const [stack, c] of controllers) {
      await c.proc.waitForLog((l) => l.msg === "backup done" && l.jobId === job.id, 15_000).catch((err: unknown) => {
        throw new Error(`controller of ${stack}: ${(err as Error).message}`);
      });
    }
    // A stack may report its resume after the job ended: read the job again once all did (or 15 s).
    const allResumed = (j: Job) => j.stacks.every((s) => s.state === StackState.STACK_STATE_RESUMED);
    settled = await client.waitForJob(GUEST_ID, job.id, allResumed, 15_000).catch(() => client.getJob(GUEST_ID, job.id));
  }
  // The writers run again (or never stopped): wait for a record after the snapshot in every
  // service's ledger, so the check has writes to keep out of the backup.
  const snapshotAt = job.snapshotAt?.getTime();
  if (snapshotAt !== undefined) {
    for (const s of services) {
      await waitFor(`a record of ${s.name} after the snapshot`, () => ledgerOf(s).some((r) => r.at > snapshotAt), 10_000);
    }
  }
  // Final ledgers: controllers first (so none starts a writer again), then the writers.
  await allOrFirstError([...controllers.values()].map((c) => c.stop(15_000)));
  await allOrFirstError(services.map((s) => writerCtl("stop", s)));

  const evidence = await gatherEvidence(job, services, join(o.scratch, "restore"));
  const violations = checkWriteIsolation({ snapshotAt: job.snapshotAt, services: evidence });
  return { job: settled, events, services: evidence, violations, controllers };
}
