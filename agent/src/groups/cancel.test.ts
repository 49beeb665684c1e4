// CancelGroup with real SQLite, the real runner, ledgers and coordinator: before the snapshot
// point every member ends `cancelled`, copies already taken are released and every stopped
// stack's job ends without `snapshotted` (which is what makes its controller start it again);
// after the point, members still archiving (the real native engine: dir copies, tar and zstd) are
// cancelled and leave no partial archive; a run that ended, an unknown or malformed id are refused.
import { strict as assert } from "node:assert";
import { existsSync, mkdirSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, it } from "node:test";
import { CancelGroupRequest, Consistency, EventKind, Phase, type CancelGroupResponse, type Event, type GroupRun } from "@lull/proto";
import { LullError, silentLogger } from "@lull/shared";
import { partialArchivePath } from "../archive/tar-zst.js";
import type { NativeGuestConfig } from "../config.js";
import { createNativeEngine } from "../engines/native/engine.js";
import { createExecaRunner } from "@lull/shared";
import { newJobId } from "../jobs/job-id.js";
import { newJobRecord } from "../jobs/job.js";
import { writeRandomFile } from "../storage/testing/tree.js";
import { memberCancelReason } from "./cancel.js";
import { memberJobKey, newGroupRunId, newGroupRunRecord } from "./group-run.js";
import { CANCELLED_CODE } from "./machine.js";
import { settleInterruptedGroups } from "./recovery.js";
import { groupFixture, type GroupFixture, type GroupFixtureOptions } from "./testing/group-fixture.js";
import { TimelineEngine } from "./testing/timeline-engine.js";

let fixture: GroupFixture | undefined;
afterEach(async () => {
  await fixture?.close();
  fixture = undefined;
});

function setUp(options: Omit<GroupFixtureOptions, "guests"> & { guests?: string[] }): GroupFixture {
  fixture = groupFixture({ guests: ["101", "102"], ...options });
  return fixture;
}

const cancel = (f: GroupFixture, groupRunId: string, reason = "maintenance"): Promise<CancelGroupResponse> =>
  f.handlers.cancelGroup(CancelGroupRequest.fromPartial({ groupRunId, reason }));
const runEvents = (f: GroupFixture, runId: string) => f.events.filter((e) => e.groupRunId === runId);
const phaseEvents = (events: Event[], phase: Phase) => events.filter((e) => e.kind === EventKind.EVENT_KIND_PHASE && e.phase === phase);
const groupEvents = (events: Event[]) => events.filter((e) => e.kind === EventKind.EVENT_KIND_GROUP);
const rejectsWithCode = (code: string, message?: RegExp) => (err: unknown) => err instanceof LullError && err.code === code && (!message || message.test(err.message));

/** What the run's watchers saw: the cancel recorded first, then each member's terminal event, then the run's end. */
function assertCancelStream(events: Event[], run: GroupRun, cancelledJobs: readonly string[]): void {
  const request = groupEvents(events).find((e) => e.message.startsWith("cancelling: "));
  assert.ok(request, "a GROUP event records the cancel");
  assert.equal(request.errorCode, CANCELLED_CODE);
  const ends = phaseEvents(events, Phase.PHASE_CANCELLED).filter((e) => e.jobId !== "");
  assert.deepEqual(ends.map((e) => e.jobId).sort(), [...cancelledJobs].sort(), "each cancelled member's terminal event is in the run's stream");
  const end = groupEvents(events).at(-1) as Event;
  assert.equal(end.phase, Phase.PHASE_CANCELLED);
  assert.ok(ends.every((e) => e.seq > request.seq && e.seq < end.seq), "request, members' ends, run's end: in this order");
  assert.equal(run.phase, Phase.PHASE_CANCELLED);
}

describe("cancelling a group run before its snapshot point", () => {
  it("while quiescing: every member ends cancelled, nothing is snapshotted, and the stopped stack's job ends without snapshotted", async () => {
    const engine = new TimelineEngine();
    const f = setUp({ engine });
    f.register("101", "web");
    f.register("102", "db");
    const started = await f.start({ guestIds: ["101", "102"], quiesceTimeoutMs: 10_000 });
    await f.waitFor("both quiescing", () => f.activeJob("101").phase === Phase.PHASE_QUIESCING && f.activeJob("102").phase === Phase.PHASE_QUIESCING);
    f.acknowledge("101", "web");
    await f.waitFor("101's own barrier to end", () => f.activeJob("101").consistency === Consistency.CONSISTENCY_APP);

    const run = (await cancel(f, started.id)).group as GroupRun;
    assert.equal(run.phase, Phase.PHASE_CANCELLED, "settled before CancelGroup answers");
    assert.equal(run.errorCode, CANCELLED_CODE);
    assert.equal(run.failedIn, Phase.PHASE_QUIESCING);
    assert.deepEqual(run.failedGuests, ["101", "102"]);
    assert.equal(run.errorMessage, "cancelled in quiescing: maintenance; 2 of 2 members did not finish: 101 cancelled in quiescing; 102 cancelled in quiescing");
    assert.deepEqual(run.members.map((m) => [m.guestId, m.phase, m.failedIn, m.errorCode, m.errorMessage]), [
      ["101", Phase.PHASE_CANCELLED, Phase.PHASE_QUIESCING, CANCELLED_CODE, `group run ${run.id} cancelled: maintenance`],
      ["102", Phase.PHASE_CANCELLED, Phase.PHASE_QUIESCING, CANCELLED_CODE, `group run ${run.id} cancelled: maintenance`],
    ]);
    assert.equal(run.members[0]?.stacks[0]?.stack, "web");
    assert.equal(run.members[0]?.stacks[0]?.acknowledgedAt !== undefined, true, "web was stopped: its controller starts it again at its job's end");
    assert.deepEqual(engine.timeline.filter((t) => t.startsWith("snapshot") || t.startsWith("archive")), []);

    const events = runEvents(f, run.id);
    assert.deepEqual([...phaseEvents(events, Phase.PHASE_SNAPSHOTTING), ...phaseEvents(events, Phase.PHASE_SNAPSHOTTED)], [], "no member reached snapshotting");
    assertCancelStream(events, run, run.jobIds);
    assert.equal(f.coordinator.activeCount, 0, "the coordinator let the run go");
  });

  it("with one member's snapshot taken: that snapshot is released and no member reaches snapshotted", async () => {
    // 102's snapshot takes long; 101's copy exists and waits for the snapshot point.
    const engine = new TimelineEngine({ snapshotDelayMs: { "102": 60_000 } });
    const f = setUp({ engine });
    const started = await f.start({ guestIds: ["101", "102"] });
    await f.waitFor("101's snapshot", () => engine.timeline.includes("snapshot 101"));

    const run = (await cancel(f, started.id, "wrong night")).group as GroupRun;
    assert.equal(run.phase, Phase.PHASE_CANCELLED);
    assert.equal(run.failedIn, Phase.PHASE_SNAPSHOTTING);
    assert.equal(run.snapshotAt, undefined, "the run never reached its snapshot point");
    assert.deepEqual(run.members.map((m) => [m.guestId, m.phase, m.failedIn]), [
      ["101", Phase.PHASE_CANCELLED, Phase.PHASE_SNAPSHOTTING],
      ["102", Phase.PHASE_CANCELLED, Phase.PHASE_SNAPSHOTTING],
    ]);
    assert.ok(engine.timeline.indexOf("release 101") > engine.timeline.indexOf("snapshot 101"), `101's copy was released: ${engine.timeline.join(" | ")}`);
    assert.ok(!engine.timeline.includes("snapshot 102") && !engine.timeline.some((t) => t.startsWith("archive")), engine.timeline.join(" | "));
    assert.deepEqual(phaseEvents(runEvents(f, run.id), Phase.PHASE_SNAPSHOTTED), []);
    assertCancelStream(runEvents(f, run.id), run, run.jobIds);
  });
});

describe("cancelling a group run after its snapshot point", () => {
  it("members still archiving (native engine, dir copies, tar + zstd) are cancelled, their partial archives removed; the run is cancelled", async () => {
    const f = setUp({
      engine: (config) => createNativeEngine({ config, runner: createExecaRunner(), log: silentLogger(), progressIntervalMs: 0 }),
      progressIntervalMs: 0,
    });
    const volume = (guestId: string) => (f.config.guests.find((g) => g.id === guestId) as NativeGuestConfig).volumes[0]!.path;
    mkdirSync(volume("101"), { recursive: true });
    writeFileSync(join(volume("101"), "small.txt"), "one record\n");
    mkdirSync(volume("102"), { recursive: true });
    await writeRandomFile(join(volume("102"), "big.bin"), 24 * 1024 * 1024);

    // The operator cancels while 102's archive is being written: at a progress report of 102 once its partial file exists.
    let cancelling: Promise<CancelGroupResponse> | undefined;
    let runId = "";
    const partial102 = () => partialArchivePath(f.config.archiveDir, f.config.prefix, f.activeJob("102").id);
    f.bus.subscribe({ guestId: "102" }, (e) => {
      if (e.kind !== EventKind.EVENT_KIND_PROGRESS || cancelling || !existsSync(partial102())) return;
      cancelling = new Promise((resolve, reject) => queueMicrotask(() => void cancel(f, runId, "disk needed").then(resolve, reject)));
    });
    runId = (await f.start({ guestIds: ["101", "102"] })).id;
    await f.waitFor("102's partial archive to exist while it is written", () => cancelling, 20_000);
    const run = (await (cancelling as Promise<CancelGroupResponse>)).group as GroupRun;

    assert.equal(run.phase, Phase.PHASE_CANCELLED);
    assert.equal(run.failedIn, Phase.PHASE_ARCHIVING);
    assert.ok(run.snapshotAt, "the run had passed its snapshot point");
    const [m101, m102] = run.members;
    assert.deepEqual([m102?.phase, m102?.failedIn, m102?.archivePath], [Phase.PHASE_CANCELLED, Phase.PHASE_ARCHIVING, ""]);
    // 101's small archive may have been written before the cancel: a member already done stays done.
    assert.ok(m101?.phase === Phase.PHASE_DONE || m101?.phase === Phase.PHASE_CANCELLED, `101 ${m101?.phase}`);
    assert.deepEqual(run.failedGuests, run.members.filter((m) => m.phase !== Phase.PHASE_DONE).map((m) => m.guestId));
    assert.equal(phaseEvents(runEvents(f, run.id), Phase.PHASE_SNAPSHOTTED).length, 2, "stacks resumed at the point, as without a cancel");

    const archives = readdirSync(f.config.archiveDir, { recursive: true }).map(String);
    assert.deepEqual(archives.filter((n) => n.includes("partial")), [], "no partial archive is left");
    assert.deepEqual(archives.filter((n) => n.startsWith("102")), [], "102 has no archive");
    if (m101?.phase === Phase.PHASE_DONE) assert.ok(archives.some((n) => m101.archivePath.endsWith(n)), "101's finished archive is kept");
    assert.deepEqual(readdirSync(f.config.stagingDir), [], "every copy was released");
    assertCancelStream(runEvents(f, run.id), run, run.members.filter((m) => m.phase === Phase.PHASE_CANCELLED).map((m) => m.id));
  });
});

describe("what CancelGroup refuses", () => {
  it("a run that ended (FAILED_PRECONDITION, as CancelJob), an unknown run, a malformed id or reason; nothing changes", async () => {
    const f = setUp({ engine: new TimelineEngine() });
    const started = await f.start({ guestIds: ["101", "102"] });
    const done = await f.waitForRunEnd(started.id);
    assert.equal(done.phase, Phase.PHASE_DONE);
    await assert.rejects(cancel(f, started.id), rejectsWithCode("LULL_E_JOB_TERMINAL", /group run g-\w+ has already ended \(done\)/));
    const after = f.groupLedger.store.getRun(started.id);
    assert.deepEqual([after?.phase, after?.errorCode], [Phase.PHASE_DONE, ""], "a refused cancel records nothing");

    await assert.rejects(cancel(f, "g-0000000000aaaaaaaaaaaaaaaa"), rejectsWithCode("LULL_E_GROUP_NOT_FOUND", /no group run g-0000000000aaaaaaaaaaaaaaaa/));
    await assert.rejects(cancel(f, "j-0000000000aaaaaaaaaaaaaaaa"), rejectsWithCode("LULL_E_INVALID_ARGUMENT", /group_run_id is not a valid group run id/));
    await assert.rejects(cancel(f, ""), rejectsWithCode("LULL_E_INVALID_ARGUMENT", /group_run_id is required/));
    await assert.rejects(cancel(f, started.id, "x".repeat(5000)), rejectsWithCode("LULL_E_INVALID_ARGUMENT", /reason/));
  });

  it("a second cancel of a cancelled run is refused the same way", async () => {
    const f = setUp({ engine: new TimelineEngine({ snapshotDelayMs: { "101": 60_000, "102": 60_000 } }) });
    const started = await f.start({ guestIds: ["101", "102"] });
    await f.waitFor("both snapshotting", () => f.activeJob("101").phase === Phase.PHASE_SNAPSHOTTING && f.activeJob("102").phase === Phase.PHASE_SNAPSHOTTING);
    const [first, second] = await Promise.allSettled([cancel(f, started.id, "first"), cancel(f, started.id, "second")]);
    assert.equal(first.status, "fulfilled");
    assert.equal(first.value.group?.phase, Phase.PHASE_CANCELLED);
    assert.equal(first.value.group?.errorMessage.startsWith("cancelled in snapshotting: first;"), true, "the first cancel is the cause");
    // The second came while the members were being cancelled: recorded as a request, answered with the settled run.
    assert.equal(second.status, "fulfilled");
    assert.equal(second.value.group?.phase, Phase.PHASE_CANCELLED);
    assert.ok(groupEvents(runEvents(f, started.id)).some((e) => e.message === "cancel requested again: second"));
    await assert.rejects(cancel(f, started.id), rejectsWithCode("LULL_E_JOB_TERMINAL", /has already ended \(cancelled\)/));
  });
});

describe("a cancel the agent's stop interrupted", () => {
  it("is settled at start-up from the stored run and members: cancelled when every member ended cancelled", async () => {
    const f = setUp({ engine: new TimelineEngine() });
    // Seeded as a crash leaves it: the cancel recorded, both members cancelled, the run not settled.
    const now = Date.now();
    const id = newGroupRunId(now);
    const record = newGroupRunRecord({ id, groupId: "", guestIds: ["101", "102"], policy: 1, idempotencyKey: id, quiesceTimeoutMs: 1000, requestedBy: "seed", now });
    const members = ["101", "102"].map((guestId) => newJobRecord({ id: newJobId(now), guestId, engine: "native", policy: 1, idempotencyKey: memberJobKey(id, guestId), quiesceTimeoutMs: 1000, requestedBy: "seed", now, groupRunId: id }));
    f.groupLedger.create(record, members);
    f.groupLedger.apply(id, { type: "start" });
    f.groupLedger.apply(id, { type: "cancel", reason: "operator" });
    for (const m of members) f.ledger.apply(m.id, { type: "cancel", reason: memberCancelReason(id, "operator") });

    const settled = settleInterruptedGroups(f.groupLedger, silentLogger());
    assert.deepEqual(settled.map((s) => [s.groupRunId, s.outcome]), [[id, "cancelled"]]);
    assert.equal(f.groupLedger.store.getRun(id)?.errorCode, CANCELLED_CODE);
  });
});
