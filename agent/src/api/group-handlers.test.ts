// Consistency groups through the API, over loopback gRPC with a real agent (real SQLite): two
// guests and three stacks acknowledged one by one, the group's events watched as one stream,
// and the errors a client sees.
import { strict as assert } from "node:assert";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, it } from "node:test";
import { status } from "@grpc/grpc-js";
import { Consistency, EventKind, Phase, QuiescePolicy, StackState, type Event } from "@lull/proto";
import { collectEvents, rejectsWith, startTestAgent, waitForJob, type TestAgent } from "../testing/agent-harness.js";
import { groupApi, waitForGroup, type GroupApi } from "../groups/testing/group-api.js";
import { TimelineEngine } from "../groups/testing/timeline-engine.js";

let current: TestAgent | undefined;
afterEach(async () => {
  if (!current) return;
  await current.stop();
  rmSync(current.dir, { recursive: true, force: true });
  current = undefined;
});

async function agentWith(engine: TimelineEngine): Promise<{ t: TestAgent; groups: GroupApi }> {
  const base = "/nonexistent-volumes";
  current = await startTestAgent({
    engine,
    guests: ["101", "102", "103"].map((id) => ({ id, driver: "dir", snapshot: "copy", volumes: [{ name: "data", path: join(base, id) }] })),
    config: { groups: [{ id: "shop", guests: ["102", "101"], quiesceTimeoutMs: 10_000 }] },
  });
  return { t: current, groups: groupApi(current.client) };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("StartGroupBackup over gRPC", () => {
  it("two guests, three stacks: every ack precedes the first snapshot, no member is snapshotted before every snapshot exists", async () => {
    const engine = new TimelineEngine({ snapshotDelayMs: { "101": 120 } });
    const { t, groups } = await agentWith(engine);
    for (const [guestId, stack] of [["101", "web"], ["102", "db"], ["102", "cache"]] as const) {
      await t.api.registerStack({ guestId, stack, controllerId: `ctl-${guestId}-${stack}` });
    }
    const { group: started, created } = await groups.startGroupBackup({ groupId: "shop", idempotencyKey: "shop-nightly", requestedBy: "test" });
    assert.equal(created, true);
    assert.ok(started);
    assert.match(started.id, /^g-[0-9a-z]{26}$/);
    assert.equal(started.groupId, "shop");
    assert.deepEqual(started.guestIds, ["101", "102"]);
    assert.equal(started.quiesceTimeoutMs, 10_000, "the group's own timeout");
    const jobOf = (guestId: string) => started.members.find((m) => m.guestId === guestId)!.id;

    // Three controllers acknowledge at different times.
    for (const guestId of ["101", "102"]) await waitForJob(t, guestId, jobOf(guestId), (j) => j.phase === Phase.PHASE_QUIESCING);
    await t.api.acknowledgeQuiesce({ guestId: "101", jobId: jobOf("101"), stack: "web" });
    await sleep(100);
    await t.api.acknowledgeQuiesce({ guestId: "102", jobId: jobOf("102"), stack: "db" });
    await sleep(150);
    assert.equal(engine.snapshotAt.size, 0, "no snapshot while cache still runs");
    await t.api.acknowledgeQuiesce({ guestId: "102", jobId: jobOf("102"), stack: "cache" });

    const ended = await waitForGroup(groups, started.id);
    assert.equal(ended.phase, Phase.PHASE_DONE);
    assert.equal(ended.consistency, Consistency.CONSISTENCY_APP);
    assert.deepEqual(ended.jobIds, [jobOf("101"), jobOf("102")]);
    assert.equal(ended.snapshotAt?.getTime(), Math.min(...engine.snapshotAt.values()));
    assert.ok(ended.totalMs >= ended.quiesceMs && ended.quiesceMs >= 250, `quiesce ${ended.quiesceMs} ms covers the wait for the last ack`);
    assert.deepEqual(ended.members.map((m) => [m.guestId, m.phase, m.stacks.map((s) => s.state)]), [
      ["101", Phase.PHASE_DONE, [StackState.STACK_STATE_QUIESCED]],
      ["102", Phase.PHASE_DONE, [StackState.STACK_STATE_QUIESCED, StackState.STACK_STATE_QUIESCED]],
    ]);

    const events = await collectEvents(t, { groupRunId: started.id }, (e) => e.kind === EventKind.EVENT_KIND_GROUP && e.phase === Phase.PHASE_DONE);
    assert.ok(events.every((e) => e.groupRunId === started.id), "one stream: the run's events and its members'");
    assert.deepEqual([...new Set(events.map((e) => e.guestId))].sort(), ["", "101", "102"]);
    const acks = events.filter((e) => e.kind === EventKind.EVENT_KIND_STACK && e.stackState === StackState.STACK_STATE_QUIESCED);
    const phase = (p: Phase) => events.filter((e) => e.kind === EventKind.EVENT_KIND_PHASE && e.phase === p);
    assert.equal(acks.length, 3);
    const firstSnapshotting = Math.min(...phase(Phase.PHASE_SNAPSHOTTING).map((e) => e.seq));
    assert.ok(acks.every((a) => a.seq < firstSnapshotting), "every stack's ack precedes the first snapshot (seq)");
    const firstSnapshot = Math.min(...engine.snapshotAt.values());
    const lastSnapshot = Math.max(...engine.snapshotAt.values());
    assert.ok(acks.every((a) => (a.at as Date).getTime() <= firstSnapshot), "every stack's ack precedes the first snapshot (time)");
    const snapshotted = phase(Phase.PHASE_SNAPSHOTTED);
    assert.equal(snapshotted.length, 2);
    assert.ok(snapshotted.every((e) => (e.at as Date).getTime() >= lastSnapshot), "no member is snapshotted before the last snapshot exists");
    const point = events.find((e) => e.kind === EventKind.EVENT_KIND_GROUP && e.phase === Phase.PHASE_SNAPSHOTTED) as Event;
    assert.equal(point.snapshotAt?.getTime(), firstSnapshot);
    assert.ok(snapshotted.every((e) => e.seq > point.seq));

    const list = await groups.listGroups({});
    assert.deepEqual(list.groups.map((g) => g.id), [started.id]);
    assert.deepEqual(list.configured.map((g) => [g.id, g.guestIds, g.quiesceTimeoutMs]), [["shop", ["101", "102"], 10_000]]);
    assert.equal((await groups.listGroups({ guestId: "103" })).groups.length, 0, "103 is in no run");
    assert.equal((await t.api.getJob({ guestId: "101", jobId: jobOf("101") })).groupRunId, started.id, "a member job names its run");
  });

  it("an ad hoc group of guests; the same key returns the same run", async () => {
    const { groups } = await agentWith(new TimelineEngine());
    const first = await groups.startGroupBackup({ guestIds: ["103", "101"], idempotencyKey: "adhoc", policy: QuiescePolicy.QUIESCE_POLICY_CRASH_CONSISTENT });
    assert.equal(first.group?.groupId, "");
    assert.deepEqual(first.group?.guestIds, ["101", "103"]);
    const again = await groups.startGroupBackup({ guestIds: ["101", "103"], idempotencyKey: "adhoc" });
    assert.equal(again.created, false);
    assert.equal(again.group?.id, first.group?.id);
    const ended = await waitForGroup(groups, first.group!.id);
    assert.equal(ended.phase, Phase.PHASE_DONE);
    assert.equal(ended.policy, QuiescePolicy.QUIESCE_POLICY_CRASH_CONSISTENT);
  });
});

describe("group errors over gRPC", () => {
  it("names what is wrong with a stable code, and starts nothing", async () => {
    const engine = new TimelineEngine({ holdArchive: true });
    const { t, groups } = await agentWith(engine);
    await rejectsWith(groups.startGroupBackup({ groupId: "nope" }), "LULL_E_GROUP_NOT_FOUND", status.NOT_FOUND);
    await rejectsWith(groups.startGroupBackup({ groupId: "Bad Id" }), "LULL_E_INVALID_ARGUMENT", status.INVALID_ARGUMENT);
    const mismatch = await rejectsWith(groups.startGroupBackup({ groupId: "shop", guestIds: ["101", "103"] }), "LULL_E_INVALID_ARGUMENT", status.INVALID_ARGUMENT);
    assert.match(mismatch.message, /exactly the members of group shop \(101, 102\)/);
    await rejectsWith(groups.startGroupBackup({ guestIds: ["101"] }), "LULL_E_INVALID_ARGUMENT", status.INVALID_ARGUMENT);
    await rejectsWith(groups.startGroupBackup({ guestIds: ["101", "101"] }), "LULL_E_INVALID_ARGUMENT", status.INVALID_ARGUMENT);
    await rejectsWith(groups.startGroupBackup({ guestIds: ["101", "999"] }), "LULL_E_UNKNOWN_GUEST", status.NOT_FOUND);
    await rejectsWith(groups.getGroup({ groupRunId: "g-0000000000aaaaaaaaaaaaaaaa" }), "LULL_E_GROUP_NOT_FOUND", status.NOT_FOUND);
    await rejectsWith(groups.getGroup({ groupRunId: "j-0000000000aaaaaaaaaaaaaaaa" }), "LULL_E_INVALID_ARGUMENT", status.INVALID_ARGUMENT);
    await rejectsWith(
      collectEvents(t, { groupRunId: "g-0000000000aaaaaaaaaaaaaaaa" }, () => true, 2_000),
      "LULL_E_GROUP_NOT_FOUND",
      status.NOT_FOUND,
    );

    const solo = await t.api.startBackup({ guestId: "102", idempotencyKey: "solo" });
    await waitForJob(t, "102", solo.job!.id, (j) => j.phase === Phase.PHASE_ARCHIVING);
    const busy = await rejectsWith(groups.startGroupBackup({ groupId: "shop", idempotencyKey: "busy" }), "LULL_E_GUEST_BUSY", status.FAILED_PRECONDITION);
    assert.match(busy.message, /guest 102 already has a job/);
    assert.equal((await groups.listGroups({})).groups.length, 0, "no run was created");
    assert.equal((await t.api.listJobs({ guestId: "101" })).jobs.length, 0, "no job was created for 101");
    engine.release();
  });
});

describe("CancelGroup over gRPC", () => {
  it("cancels every member, answers the cancelled run, and the run's stream shows the cancel; then refuses with stable codes", async () => {
    const { t, groups } = await agentWith(new TimelineEngine());
    await t.api.registerStack({ guestId: "101", stack: "web", controllerId: "ctl-101-web" });
    const { group: started } = await groups.startGroupBackup({ groupId: "shop", idempotencyKey: "to-cancel" });
    assert.ok(started);
    const web = started.members.find((m) => m.guestId === "101")!;
    // 101's stack has not answered yet: the run waits at its barrier.
    await waitForJob(t, "101", web.id, (j) => j.phase === Phase.PHASE_QUIESCING);

    const { group: run } = await groups.cancelGroup({ groupRunId: started.id, reason: "operator stop" });
    assert.equal(run?.phase, Phase.PHASE_CANCELLED);
    assert.equal(run?.errorCode, "LULL_E_CANCELLED");
    assert.deepEqual(run?.members.map((m) => [m.guestId, m.phase]), [["101", Phase.PHASE_CANCELLED], ["102", Phase.PHASE_CANCELLED]]);

    // A watcher of the run (here one that connects afterwards: the events are persisted) sees the cancel.
    const events = await collectEvents(t, { groupRunId: started.id }, (e) => e.kind === EventKind.EVENT_KIND_GROUP && e.phase === Phase.PHASE_CANCELLED);
    const request = events.find((e) => e.kind === EventKind.EVENT_KIND_GROUP && e.message === "cancelling: operator stop");
    assert.ok(request, "the cancel is one GROUP event");
    const ends = events.filter((e) => e.kind === EventKind.EVENT_KIND_PHASE && e.phase === Phase.PHASE_CANCELLED);
    assert.deepEqual(ends.map((e) => e.guestId).sort(), ["101", "102"], "each member's terminal event");
    assert.ok(ends.every((e) => e.seq > request.seq));

    const again = await rejectsWith(groups.cancelGroup({ groupRunId: started.id }), "LULL_E_JOB_TERMINAL", status.FAILED_PRECONDITION);
    assert.match(again.message, /has already ended \(cancelled\)/);
    await rejectsWith(groups.cancelGroup({ groupRunId: "g-0000000000aaaaaaaaaaaaaaaa" }), "LULL_E_GROUP_NOT_FOUND", status.NOT_FOUND);
    await rejectsWith(groups.cancelGroup({ groupRunId: "shop" }), "LULL_E_INVALID_ARGUMENT", status.INVALID_ARGUMENT);
    const solo = await t.api.startBackup({ guestId: "101", idempotencyKey: "after-cancel" });
    assert.ok(solo.created, "the guests take new work");
  });
});
