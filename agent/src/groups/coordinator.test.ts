// The group coordinator with real SQLite, the real runner and ledgers, and an engine that records
// what it does: one barrier across guests, one snapshot point, failure before the point fails every
// member (and releases what was taken), crash-consistent policy, independence after the point.
import { strict as assert } from "node:assert";
import { afterEach, describe, it } from "node:test";
import { Consistency, EventKind, Phase, QuiescePolicy, StackState, type Event, type GroupRun, type StartGroupBackupRequest } from "@lull/proto";
import { LullError } from "@lull/shared";
import { newJobId } from "../jobs/job-id.js";
import { eventFor, newJobRecord } from "../jobs/job.js";
import { groupFixture, type GroupFixture, type GroupFixtureOptions } from "./testing/group-fixture.js";
import { TimelineEngine } from "./testing/timeline-engine.js";

let fixture: GroupFixture | undefined;
afterEach(async () => {
  await fixture?.close();
  fixture = undefined;
});

function setUp(engine: TimelineEngine, guests = ["101", "102"], extra: Partial<GroupFixtureOptions> = {}): GroupFixture {
  fixture = groupFixture({ engine, guests, ...extra });
  // The timeline also shows when each member committed `snapshotted` (stacks may resume from then on).
  fixture.bus.subscribe({}, (e) => {
    if (e.kind === EventKind.EVENT_KIND_PHASE && e.phase === Phase.PHASE_SNAPSHOTTED) engine.timeline.push(`snapshotted ${e.guestId}`);
  });
  return fixture;
}

const memberEvents = (f: GroupFixture, runId: string) => f.events.filter((e) => e.groupRunId === runId);
const phaseEvents = (events: Event[], phase: Phase) => events.filter((e) => e.kind === EventKind.EVENT_KIND_PHASE && e.phase === phase);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** 101 (stack web) and 102 (stack db) in one run, both quiescing, and web acknowledged. */
async function startWithWebAcknowledged(f: GroupFixture, req: Partial<StartGroupBackupRequest>): Promise<GroupRun> {
  f.register("101", "web");
  f.register("102", "db");
  const run = await f.start({ guestIds: ["101", "102"], quiesceTimeoutMs: 10_000, ...req });
  await f.waitFor("both quiescing", () => f.activeJob("101").phase === Phase.PHASE_QUIESCING && f.activeJob("102").phase === Phase.PHASE_QUIESCING);
  f.acknowledge("101", "web");
  return run;
}

describe("group barrier and snapshot point", () => {
  it("no member snapshots before every stack of every member is quiesced; none is snapshotted before the last snapshot exists", async () => {
    const engine = new TimelineEngine({ snapshotDelayMs: { "102": 150 } });
    const f = setUp(engine);
    f.register("101", "web");
    f.register("102", "db");
    f.register("102", "cache");
    const run = await f.start({ guestIds: ["102", "101"], idempotencyKey: "shop-1", quiesceTimeoutMs: 10_000, requestedBy: "test" });
    assert.deepEqual(run.guestIds, ["101", "102"]);
    assert.equal(run.jobIds.length, 2);
    assert.equal(run.phase, Phase.PHASE_QUIESCING);
    assert.ok(run.members.every((m) => m.groupRunId === run.id && m.requestedBy === "test"));

    await f.waitFor("101 to quiesce", () => f.activeJob("101").phase === Phase.PHASE_QUIESCING && f.activeJob("102").phase === Phase.PHASE_QUIESCING);
    f.acknowledge("101", "web");
    await f.waitFor("101's own barrier to end", () => f.activeJob("101").consistency === Consistency.CONSISTENCY_APP);
    await sleep(150);
    assert.equal(f.activeJob("101").phase, Phase.PHASE_QUIESCING, "101 waits for the group barrier");
    assert.equal(engine.timeline.length, 0, `nothing was snapshotted while 102's stacks still run: ${engine.timeline.join(" | ")}`);

    f.acknowledge("102", "db");
    f.acknowledge("102", "cache");
    const ended = await f.waitForRunEnd(run.id);
    assert.equal(ended.phase, Phase.PHASE_DONE);
    assert.equal(ended.consistency, Consistency.CONSISTENCY_APP);
    assert.deepEqual(ended.failedGuests, []);
    assert.equal(ended.snapshotAt?.getTime(), Math.min(...engine.snapshotAt.values()), "snapshot_at is the earliest member snapshot");
    assert.ok(ended.quiescedAt && ended.quiescedAt.getTime() <= (ended.snapshotAt?.getTime() ?? 0));

    const lastSnapshot = Math.max(engine.timeline.indexOf("snapshot 101"), engine.timeline.indexOf("snapshot 102"));
    for (const g of ["101", "102"]) assert.ok(engine.timeline.indexOf(`snapshotted ${g}`) > lastSnapshot, `${g}: ${engine.timeline.join(" | ")}`);

    const events = memberEvents(f, run.id);
    const lastAck = Math.max(...events.filter((e) => e.stackState === StackState.STACK_STATE_QUIESCED).map((e) => e.seq));
    const firstSnapshotting = Math.min(...phaseEvents(events, Phase.PHASE_SNAPSHOTTING).map((e) => e.seq));
    assert.ok(lastAck < firstSnapshotting, "every quiesce acknowledgement precedes the first snapshot");
    const groupPhases = events.filter((e) => e.kind === EventKind.EVENT_KIND_GROUP).map((e) => e.phase);
    assert.deepEqual(
      [...new Set(groupPhases)],
      [Phase.PHASE_QUEUED, Phase.PHASE_QUIESCING, Phase.PHASE_SNAPSHOTTING, Phase.PHASE_SNAPSHOTTED, Phase.PHASE_ARCHIVING, Phase.PHASE_DONE],
    );
    const point = events.find((e) => e.kind === EventKind.EVENT_KIND_GROUP && e.phase === Phase.PHASE_SNAPSHOTTED) as Event;
    assert.ok(phaseEvents(events, Phase.PHASE_SNAPSHOTTED).every((e) => e.seq > point.seq), "the run's snapshot point is committed before any member's snapshotted");
  });

  it("a member without a point-in-time copy waits for the snapshot point before archiving in place", async () => {
    const engine = new TimelineEngine({ noCopy: ["103"], snapshotDelayMs: { "101": 100 } });
    const f = setUp(engine, ["101", "102", "103"], { noCopy: ["103"] });
    const run = await f.start({ guestIds: ["101", "102", "103"] });
    const ended = await f.waitForRunEnd(run.id);
    assert.equal(ended.phase, Phase.PHASE_DONE);
    assert.equal(ended.consistency, Consistency.CONSISTENCY_CRASH, "no stack registered: crash-consistent");
    assert.ok(engine.timeline.indexOf("archive 103") > engine.timeline.indexOf("snapshot 101"), engine.timeline.join(" | "));
  });
});

describe("failure before the snapshot point fails the whole group", () => {
  it("a refusal under the fail policy: every member fails, nothing is snapshotted, the cause names the member", async () => {
    const engine = new TimelineEngine();
    const f = setUp(engine);
    const run = await startWithWebAcknowledged(f, { policy: QuiescePolicy.QUIESCE_POLICY_FAIL });
    await f.waitFor("101's barrier to end", () => f.activeJob("101").consistency === Consistency.CONSISTENCY_APP);
    f.refuse("102", "db", "maintenance window");

    const ended = await f.waitForRunEnd(run.id);
    assert.equal(ended.phase, Phase.PHASE_FAILED);
    assert.equal(ended.failedIn, Phase.PHASE_QUIESCING);
    assert.equal(ended.errorCode, "LULL_E_QUIESCE_REFUSED");
    assert.deepEqual(ended.failedGuests, ["101", "102"]);
    assert.match(ended.errorMessage, /2 of 2 members did not finish/);
    assert.match(ended.errorMessage, /maintenance window/);

    const [j101, j102] = f.groupLedger.store.memberJobs(run.id);
    assert.equal(j102?.errorCode, "LULL_E_QUIESCE_REFUSED");
    assert.equal(j101?.phase, Phase.PHASE_FAILED);
    assert.equal(j101?.errorCode, "LULL_E_GROUP_MEMBER_FAILED");
    assert.match(j101?.errorMessage ?? "", /member 102 .* failed in quiescing: LULL_E_QUIESCE_REFUSED/);
    assert.equal(j101?.stacks[0]?.state, StackState.STACK_STATE_QUIESCED, "101's stopped stack is resumed by its controller at the job's end");
    assert.equal(engine.timeline.filter((t) => t.startsWith("snapshot")).length, 0, "no snapshot was taken");
  });

  it("a snapshot failure: the snapshot already taken is released, every member fails, no member reaches snapshotted", async () => {
    const engine = new TimelineEngine({ failSnapshot: ["102"], snapshotDelayMs: { "102": 100 } });
    const f = setUp(engine);
    const run = await f.start({ guestIds: ["101", "102"] });
    const ended = await f.waitForRunEnd(run.id);
    assert.equal(ended.phase, Phase.PHASE_FAILED);
    assert.equal(ended.errorCode, "LULL_E_SNAPSHOT_FAILED");
    assert.equal(ended.failedIn, Phase.PHASE_SNAPSHOTTING);
    assert.ok(engine.timeline.includes("snapshot 101"), engine.timeline.join(" | "));
    assert.ok(engine.timeline.indexOf("release 101") > engine.timeline.indexOf("snapshot 101"), "101's snapshot was released");
    assert.ok(!engine.timeline.includes("snapshot 102") && !engine.timeline.some((t) => t.startsWith("archive")), engine.timeline.join(" | "));
    assert.equal(phaseEvents(memberEvents(f, run.id), Phase.PHASE_SNAPSHOTTED).length, 0);
    const [j101] = f.groupLedger.store.memberJobs(run.id);
    assert.equal(j101?.errorCode, "LULL_E_GROUP_MEMBER_FAILED");
    assert.equal(j101?.failedIn, Phase.PHASE_SNAPSHOTTING);
  });

  it("a quiesce timeout under the fail policy fails the group with LULL_E_QUIESCE_TIMEOUT", async () => {
    const engine = new TimelineEngine();
    const f = setUp(engine);
    f.register("101", "web");
    f.register("102", "db");
    const run = await f.start({ guestIds: ["101", "102"], quiesceTimeoutMs: 300 });
    await f.waitFor("101 quiescing", () => f.activeJob("101").phase === Phase.PHASE_QUIESCING);
    f.acknowledge("101", "web");
    const ended = await f.waitForRunEnd(run.id);
    assert.equal(ended.errorCode, "LULL_E_QUIESCE_TIMEOUT");
    assert.deepEqual(ended.failedGuests, ["101", "102"]);
    assert.equal(engine.timeline.filter((t) => t.startsWith("snapshot")).length, 0);
  });

  it("a stack that runs again before the point (its controller's deadline passed) fails the group", async () => {
    const engine = new TimelineEngine();
    const f = setUp(engine);
    const run = await startWithWebAcknowledged(f, { policy: QuiescePolicy.QUIESCE_POLICY_CRASH_CONSISTENT });
    await f.waitFor("101's barrier to end", () => f.activeJob("101").consistency === Consistency.CONSISTENCY_APP);
    // 102's db is still being stopped when web's controller gives up and starts web again.
    f.ledger.apply(f.activeJob("101").id, { type: "stack-resumed", stack: "web", downtimeMs: 5_000, early: false, at: Date.now() });
    const ended = await f.waitForRunEnd(run.id);
    assert.equal(ended.errorCode, "LULL_E_RESUMED_BEFORE_SNAPSHOT");
    assert.match(ended.errorMessage, /cause: stack web of member 101 ran again before every member's snapshot existed/);
    assert.deepEqual(ended.failedGuests, ["101", "102"]);
    assert.equal(engine.timeline.filter((t) => t.startsWith("snapshot")).length, 0);
  });

  it("cancelling one member before the point fails the group", async () => {
    const engine = new TimelineEngine();
    const f = setUp(engine);
    f.register("102", "db");
    const run = await f.start({ guestIds: ["101", "102"], quiesceTimeoutMs: 10_000 });
    await f.waitFor("102 quiescing", () => f.activeJob("102").phase === Phase.PHASE_QUIESCING);
    await f.runner.cancel(f.activeJob("101").id, "operator");
    const ended = await f.waitForRunEnd(run.id);
    assert.equal(ended.phase, Phase.PHASE_FAILED);
    assert.equal(ended.errorCode, "LULL_E_CANCELLED");
    const jobs = f.groupLedger.store.memberJobs(run.id);
    assert.deepEqual(jobs.map((j) => [j.guestId, j.phase, j.errorCode]), [
      ["101", Phase.PHASE_CANCELLED, "LULL_E_CANCELLED"],
      ["102", Phase.PHASE_FAILED, "LULL_E_GROUP_MEMBER_FAILED"],
    ]);
  });
});

describe("policy and independence", () => {
  it("crash-consistent policy: a refusal is recorded on its member, the group goes on and is crash-consistent", async () => {
    const engine = new TimelineEngine();
    const f = setUp(engine);
    const run = await startWithWebAcknowledged(f, { policy: QuiescePolicy.QUIESCE_POLICY_CRASH_CONSISTENT });
    f.refuse("102", "db", "busy");
    const ended = await f.waitForRunEnd(run.id);
    assert.equal(ended.phase, Phase.PHASE_DONE);
    assert.equal(ended.consistency, Consistency.CONSISTENCY_CRASH);
    const jobs = f.groupLedger.store.memberJobs(run.id);
    assert.deepEqual(jobs.map((j) => [j.guestId, j.phase, j.consistency]), [
      ["101", Phase.PHASE_DONE, Consistency.CONSISTENCY_APP],
      ["102", Phase.PHASE_DONE, Consistency.CONSISTENCY_CRASH],
    ]);
  });

  it("after the snapshot point members archive on their own: one archive failure fails only that member; the run names it", async () => {
    const engine = new TimelineEngine({ failArchive: ["102"] });
    const f = setUp(engine);
    const run = await f.start({ guestIds: ["101", "102"] });
    const ended = await f.waitForRunEnd(run.id);
    assert.equal(ended.phase, Phase.PHASE_FAILED);
    assert.equal(ended.errorCode, "LULL_E_ARCHIVE_FAILED");
    assert.deepEqual(ended.failedGuests, ["102"]);
    assert.match(ended.errorMessage, /^1 of 2 members did not finish: 102 failed in archiving \(LULL_E_ARCHIVE_FAILED/);
    const jobs = f.groupLedger.store.memberJobs(run.id);
    assert.deepEqual(jobs.map((j) => j.phase), [Phase.PHASE_DONE, Phase.PHASE_FAILED]);
    assert.equal(phaseEvents(memberEvents(f, run.id), Phase.PHASE_SNAPSHOTTED).length, 2);
  });
});

describe("starting a group", () => {
  it("a busy member guest: LULL_E_GUEST_BUSY naming it, and nothing is started", async () => {
    const engine = new TimelineEngine({ holdArchive: true });
    const f = setUp(engine);
    const now = Date.now();
    const single = newJobRecord({ id: newJobId(now), guestId: "102", engine: "native", policy: 1, idempotencyKey: "solo", quiesceTimeoutMs: 1000, requestedBy: "", now });
    f.ledger.create(single, eventFor(single, EventKind.EVENT_KIND_PHASE));
    f.runner.start(single);
    await assert.rejects(
      () => f.start({ guestIds: ["101", "102"], idempotencyKey: "busy" }),
      (err: unknown) => err instanceof LullError && err.code === "LULL_E_GUEST_BUSY" && /guest 102/.test(err.message),
    );
    assert.equal(f.store.activeJob("101"), undefined, "no job was created for 101");
    assert.deepEqual(f.groupLedger.store.listRuns({ limit: 10 }), []);
    engine.release();
  });

  it("is idempotent per key; the same key for other guests is LULL_E_IDEMPOTENCY_CONFLICT", async () => {
    const engine = new TimelineEngine();
    const f = setUp(engine, ["101", "102", "103"]);
    const first = await f.start({ guestIds: ["101", "102"], idempotencyKey: "nightly" });
    const again = await f.handlers.startGroupBackup({ groupId: "", guestIds: ["102", "101"], idempotencyKey: "nightly", policy: 0, quiesceTimeoutMs: 0, requestedBy: "" });
    assert.equal(again.created, false);
    assert.equal(again.group?.id, first.id);
    await assert.rejects(
      () => f.start({ guestIds: ["101", "103"], idempotencyKey: "nightly" }),
      (err: unknown) => err instanceof LullError && err.code === "LULL_E_IDEMPOTENCY_CONFLICT",
    );
    await f.waitForRunEnd(first.id);
  });
});
