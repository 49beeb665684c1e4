// Prune over a real catalog (SQLite) and real archive files, for random histories: the real prune
// removes exactly what the dry run said, the newest verified point of each stack and protected
// points stay, nothing goes after a failed run; vzdump points go through `pvesh delete`.
import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { Consistency, Phase, QuiescePolicy, SnapshotMode, StackState } from "@lull/proto";
import { createLogger, systemClock } from "@lull/shared";
import { createRecordingRunner } from "@lull/shared/testing";
import { pointIdOf } from "../backups/restore-point.js";
import { EventBus } from "../events/bus.js";
import { newJobRecord } from "../jobs/job.js";
import { newJobId } from "../jobs/job-id.js";
import { JobLedger } from "../jobs/ledger.js";
import { JobStore } from "../jobs/store.js";
import { VerifyStore } from "../verify/store.js";
import { newVerifyRecord, transition } from "../verify/machine.js";
import { pruneConfigSchema } from "./config.js";
import { PointPruner } from "./prune.js";

const dirs: string[] = [];
after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function setUp(keep: Record<string, number>) {
  const dir = mkdtempSync(join(tmpdir(), "lull-prune-"));
  dirs.push(dir);
  const log = createLogger({ name: "test", level: "silent" });
  const store = JobStore.open(join(dir, "agent.db"));
  const jobs = new JobLedger({ store, bus: new EventBus(log), log, clock: systemClock });
  const verify = new VerifyStore(store.database);
  const runner = createRecordingRunner();
  const archiveDir = join(dir, "archives");
  mkdirSync(join(archiveDir, "g1"), { recursive: true });
  const pruner = new PointPruner({ config: pruneConfigSchema.parse({ keep }), node: "pve1", archiveDir, backups: jobs.backups, jobs: store, verify, ledger: jobs.ledger, runner, log });
  return { dir, store, jobs, verify, runner, archiveDir, pruner };
}

type Env = ReturnType<typeof setUp>;

function addPoint(env: Env, at: number, opts: { protected?: boolean; vzdump?: boolean; verified?: string[] }): string {
  const jobId = newJobId(at);
  const id = pointIdOf(jobId);
  const location = opts.vzdump ? `local:backup/vzdump-lxc-101-${at}.tar.zst` : join(env.archiveDir, "g1", `${id}.tar.zst`);
  if (!opts.vzdump) writeFileSync(location, "archive");
  const job = { ...newJobRecord({ id: jobId, guestId: "g1", engine: opts.vzdump ? "vzdump" : "native", policy: QuiescePolicy.QUIESCE_POLICY_FAIL, idempotencyKey: jobId, quiesceTimeoutMs: 1000, requestedBy: "t", now: at }), phase: Phase.PHASE_DONE };
  env.jobs.ledger.commit(() => {
    env.store.insertJob(job);
    env.jobs.backups.insert({
      id, jobId, guestId: "g1", groupRunId: "", engine: job.engine, mode: SnapshotMode.SNAPSHOT_MODE_SNAPSHOT, consistency: Consistency.CONSISTENCY_APP,
      snapshotAt: new Date(at), createdAt: new Date(at), locationKind: opts.vzdump ? "vzdump-archive" : "native-archive", location, sizeBytes: 7,
      stacks: [{ stack: "db", state: StackState.STACK_STATE_RESUMED }], protected: opts.protected ?? false, notes: "", origin: "lull", sha256: "", manifest: undefined, integrity: undefined,
    });
    if (opts.verified?.length) {
      let r = newVerifyRecord(`v-${id}`, id, "g1", at);
      env.verify.insert(r);
      r = transition(r, { type: "restored", ms: 1 }, at);
      r = transition(r, { type: "checked", ms: 1, results: opts.verified.map((stack) => ({ stack, check: "command", ok: true, reason: "", durationMs: 1, evidence: {} })) }, at);
      env.verify.save(transition(r, { type: "torn-down", ms: 1 }, at));
    }
  });
  return id;
}

function addFailedRun(env: Env, at: number) {
  const jobId = newJobId(at);
  const job = { ...newJobRecord({ id: jobId, guestId: "g1", engine: "native", policy: QuiescePolicy.QUIESCE_POLICY_FAIL, idempotencyKey: jobId, quiesceTimeoutMs: 1000, requestedBy: "t", now: at }), phase: Phase.PHASE_FAILED };
  env.jobs.ledger.commit(() => env.store.insertJob(job));
}

describe("prune of restore points", () => {
  it("removes exactly what the dry run said, over random histories in a real catalog", async () => {
    for (let seed = 1; seed <= 25; seed++) {
      const r = rng(seed);
      const keep = { keepLast: Math.floor(r() * 3), keepDaily: Math.floor(r() * 3), keepWeekly: Math.floor(r() * 2) };
      const env = setUp(keep);
      let at = Date.UTC(2026, 0, 1);
      const verifiedNewest = new Map<string, string>();
      for (let i = 0; i < 5 + Math.floor(r() * 20); i++) {
        at += Math.floor(r() * 3 * 24 * 3600_000);
        if (r() < 0.15) {
          addFailedRun(env, at);
          continue;
        }
        const verified = ["db", "web"].filter(() => r() < 0.2);
        const id = addPoint(env, at, { protected: r() < 0.1, vzdump: r() < 0.3, verified });
        for (const s of verified) verifiedNewest.set(s, id);
      }
      const dry = env.pruner.plan("g1");
      const real = await env.pruner.prune("g1");
      const planned = dry.decisions.filter((d) => d.action === "remove").map((d) => d.id);
      assert.deepEqual(real.failures, [], `seed ${seed}`);
      assert.deepEqual(real.removed, planned, `seed ${seed}: the real prune removed what the dry run said`);
      const left = new Set(env.jobs.backups.list({ guestId: "g1", limit: 1000 }).map((p) => p.id));
      for (const id of planned) assert.equal(left.has(id), false);
      for (const d of dry.decisions.filter((x) => x.action === "keep")) {
        assert.ok(left.has(d.id));
        if (d.locationKind === "native-archive") assert.ok(existsSync(d.location), `seed ${seed}: kept archive ${d.location} still there`);
      }
      for (const d of dry.decisions.filter((x) => x.action === "remove" && x.locationKind === "native-archive")) assert.equal(existsSync(d.location), false);
      for (const id of verifiedNewest.values()) assert.ok(left.has(id), `seed ${seed}: newest verified point kept`);
      const pvesh = env.runner.calls.filter((c) => c.file === "pvesh");
      const vzRemoved = dry.decisions.filter((d) => d.action === "remove" && d.locationKind === "vzdump-archive");
      assert.deepEqual(pvesh.map((c) => c.args), vzRemoved.map((d) => ["delete", `/nodes/pve1/storage/local/content/${d.location}`]));
      if (dry.lastRunFailed) assert.deepEqual(real.removed, []);
      // A second prune finds nothing more to remove.
      assert.deepEqual((await env.pruner.prune("g1")).removed, [], `seed ${seed}: prune is idempotent`);
    }
  });

  it("a vzdump point Lull made names its archive by path (vzdump's TARGET): removed as <storage>:backup/<file>", async () => {
    const env = setUp({ keepLast: 1 });
    const pruner = new PointPruner({ config: pruneConfigSchema.parse({ keep: { keepLast: 1 } }), node: "pve1", archiveDir: env.archiveDir, backups: env.jobs.backups, jobs: env.store, verify: env.verify, ledger: env.jobs.ledger, runner: env.runner, log: createLogger({ name: "test", level: "silent" }), vzdumpStorage: "local" });
    const t = Date.UTC(2026, 5, 1);
    const old = addPoint(env, t, { vzdump: true });
    addPoint(env, t + 3600_000, { vzdump: true });
    env.jobs.ledger.commit(() => env.store.database.connection.prepare("UPDATE backups SET location = ? WHERE id = ?").run("/var/lib/vz/dump/vzdump-lxc-101-2026_06_01-00_00_00.tar.zst", old));
    const r = await pruner.prune("g1");
    assert.deepEqual([r.removed, r.failures], [[old], []]);
    assert.deepEqual(env.runner.calls.filter((c) => c.file === "pvesh").map((c) => c.args), [["delete", "/nodes/pve1/storage/local/content/local:backup/vzdump-lxc-101-2026_06_01-00_00_00.tar.zst"]]);
  });

  it("nothing goes after a failed run, and the plan says why", async () => {
    const env = setUp({ keepLast: 1 });
    const t = Date.UTC(2026, 5, 1);
    addPoint(env, t, {});
    addPoint(env, t + 3600_000, {});
    addFailedRun(env, t + 7200_000);
    const plan = await env.pruner.prune("g1");
    assert.equal(plan.lastRunFailed, true);
    assert.deepEqual(plan.removed, []);
    assert.match(plan.decisions[1]!.reasons.join("; "), /last run failed/);
  });
});
