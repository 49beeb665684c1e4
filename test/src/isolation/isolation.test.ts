// Write isolation, checked both ways, end to end: real lull-agent (native engine, btrfs driver on a
// loop-mounted image), real lull-controllers, three real writer processes (SQLite WAL, fsync'd
// log, temp+rename objects), a real restore. With the stacks quiesced the check finds nothing;
// with quiesce skipped (controllers that refuse, or none at all, policy crash-consistent) the very
// same check reports records written after the snapshot, and the job says `consistency: CRASH`.
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, test, type TestContext } from "node:test";
import { Consistency, EventKind, Phase, SnapshotMode, StackState, type Job } from "@lull/proto";
import { phaseName } from "@lull/shared";
import { loopBtrfsUnavailable, makeTempDir, mountLoopBtrfs, phaseSequence, removeDir, requireAvailable, type LoopBtrfs } from "../support/index.js";
import { summarizeViolations, type Violation } from "./check.js";
import { runIsolationScenario, SERVICES, type ScenarioResult } from "./scenario.js";

/** Each `btrfs subvolume snapshot` waits this long: the volumes are snapshotted ≥ 250 ms apart. */
const SNAPSHOT_DELAY_MS = 250;

let unavailable: string | undefined;
let scratch: string | undefined;
let btrfs: LoopBtrfs | undefined;

before(async () => {
  unavailable = await loopBtrfsUnavailable();
  if (unavailable) return;
  scratch = await makeTempDir("lull-isolation-");
  btrfs = await mountLoopBtrfs({ dir: scratch, sizeBytes: 512 * 1024 ** 2 });
});

after(async () => {
  await btrfs?.teardown();
  if (scratch) await removeDir(scratch);
});

const describeJob = (job: Job) =>
  `job ${job.id}: ${phaseName(job.phase)}${job.errorCode ? ` ${job.errorCode}: ${job.errorMessage}` : ""}, ` +
  `consistency ${Consistency[job.consistency]}, stacks ${job.stacks.map((s) => `${s.stack}=${StackState[s.state]}`).join(" ")}`;

const report = (violations: readonly Violation[]) => summarizeViolations(violations).join("\n") || "none";

function assertDoneWithSnapshot(r: ScenarioResult): number {
  assert.equal(r.job.phase, Phase.PHASE_DONE, describeJob(r.job));
  assert.equal(r.job.mode, SnapshotMode.SNAPSHOT_MODE_SNAPSHOT);
  assert.ok(r.job.snapshotAt, "the job has a snapshot time");
  // The knob was in effect: the volumes were snapshotted one after another, each ≥ the delay late.
  assert.ok(r.job.snapshotMs >= SERVICES.length * SNAPSHOT_DELAY_MS, `snapshotting took ${r.job.snapshotMs} ms`);
  assert.deepEqual(
    r.services.map((s) => s.service),
    SERVICES.map((s) => s.name),
    "every service is in the evidence",
  );
  return r.job.snapshotAt.getTime();
}

function quiesceBeganAt(r: ScenarioResult): number {
  const event = r.events.find((e) => e.kind === EventKind.EVENT_KIND_PHASE && e.phase === Phase.PHASE_QUIESCING);
  assert.ok(event?.at, `no quiescing event: ${phaseSequence(r.events).join(" → ")}`);
  return event.at.getTime();
}

async function scenario(name: string, quiesce: "stop" | "refuse" | "none") {
  requireAvailable("a loop-mounted btrfs (root, btrfs-progs)", unavailable ?? (!scratch || !btrfs ? "setup failed" : undefined));
  assert.ok(scratch && btrfs);
  return runIsolationScenario({ scratch: join(scratch, name), btrfs, name, quiesce, snapshotDelayMs: SNAPSHOT_DELAY_MS });
}

test("quiesced stacks: nothing written after the snapshot is restored, every acknowledged record is, SQLite is intact", async (t) => {
  const r = await scenario("quiesced", "stop");
  const snapshotAt = assertDoneWithSnapshot(r);
  assert.equal(r.job.consistency, Consistency.CONSISTENCY_APP, describeJob(r.job));
  for (const stack of r.job.stacks) {
    assert.equal(stack.state, StackState.STACK_STATE_RESUMED, describeJob(r.job));
    assert.equal(stack.resumedEarly, true, `${stack.stack} resumed at snapshotted`);
  }
  assert.deepEqual(r.violations, [], `violations:\n${report(r.violations)}`);

  const quiesceAt = quiesceBeganAt(r);
  assert.ok(quiesceAt < snapshotAt);
  for (const s of r.services) {
    const before = s.acked.filter((a) => a.ackedAt < quiesceAt).length;
    const afterSnapshot = s.acked.filter((a) => a.at > snapshotAt).length;
    // Not vacuous: each writer had records to keep and wrote more (after its early resume) to keep out.
    assert.ok(before >= 30, `${s.service}: ${before} records acknowledged before the quiesce`);
    assert.ok(afterSnapshot > 0, `${s.service}: the writer wrote again after the snapshot`);
    // The writers stopped before the snapshot: the backup is exactly what they acknowledged until then.
    const ackedBeforeSnapshot = s.acked.filter((a) => a.ackedAt < snapshotAt).map((a) => a.id);
    assert.deepEqual(s.restored?.map((x) => x.id), ackedBeforeSnapshot, `${s.service}: restored ids`);
  }
});

function assertCaughtWritesAfterSnapshot(t: TestContext, r: ScenarioResult): void {
  const snapshotAt = assertDoneWithSnapshot(r);
  for (const line of summarizeViolations(r.violations)) t.diagnostic(line);
  assert.equal(r.job.consistency, Consistency.CONSISTENCY_CRASH, describeJob(r.job));
  for (const { name } of SERVICES) {
    const late = r.violations.filter((v) => v.service === name && v.kind === "written-after-snapshot");
    assert.ok(late.length > 0, `${name}: no record after the snapshot reported; violations:\n${report(r.violations)}`);
  }
  // Only what a crash-consistent copy can have: late records, perhaps a write caught half-done.
  // Acknowledged records are all there and SQLite opens intact even so.
  const other = r.violations.filter((v) => v.kind !== "written-after-snapshot" && !(v.kind === "damaged" && v.service !== "db"));
  assert.deepEqual(other, [], report(other));
  for (const s of r.services) {
    assert.ok(s.acked.filter((a) => a.ackedAt < snapshotAt).length >= 30, `${s.service} acknowledged records before the snapshot`);
  }
}

test("quiesce refused, policy crash-consistent: the same check reports records written after the snapshot", async (t) => {
  const r = await scenario("refused", "refuse");
  assertCaughtWritesAfterSnapshot(t, r);
  // The barrier ends at the first refusal; stacks whose refusal came later stay pending in the job.
  const refused = r.job.stacks.filter((s) => s.state === StackState.STACK_STATE_REFUSED);
  assert.ok(refused.length > 0, describeJob(r.job));
  assert.ok(r.job.stacks.every((s) => s.state !== StackState.STACK_STATE_QUIESCED), describeJob(r.job));
  for (const { stack, reason } of refused) {
    assert.match(reason, /refusing to stop \(this stack cannot be quiesced\)/, `${stack}: the job keeps the refusal's reason`);
    const logs = r.controllers.get(stack)?.proc.logs ?? [];
    assert.ok(
      logs.some((l) => /refusing the quiesce$/.test(String(l.msg)) && l.jobId === r.job.id),
      `the controller of ${stack} logged its refusal`,
    );
  }
});

test("no stacks registered, policy crash-consistent: the same check reports records written after the snapshot", async (t) => {
  const r = await scenario("unregistered", "none");
  assertCaughtWritesAfterSnapshot(t, r);
  assert.deepEqual(r.job.stacks, []);
});
