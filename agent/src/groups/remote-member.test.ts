// The member side of a group coordinated on another node: it reports its steps, waits for the
// coordinator's word, and never longer than its own deadlines; before the point a lost
// coordinator stops it with LULL_E_GROUP_COORDINATOR_LOST, after it nothing stops it.
import { strict as assert } from "node:assert";
import { describe, it } from "node:test";
import { Consistency, GroupMemberGo, GroupMemberStep } from "@lull/proto";
import { LullError, silentLogger, systemClock } from "@lull/shared";
import { RemoteMembership, RemoteMemberships, eitherMembership, type MemberStepReport } from "./remote-member.js";

function member(o: { holdMs?: number; snapshotTimeoutMs?: number; makesCopy?: boolean } = {}) {
  const reports: MemberStepReport[] = [];
  const m = new RemoteMembership({
    groupRunId: "g-00000000000000000000000000",
    guestId: "201",
    coordinator: "pve1",
    makesCopy: o.makesCopy ?? true,
    clock: systemClock,
    log: silentLogger(),
    holdMs: o.holdMs ?? 5_000,
    snapshotTimeoutMs: o.snapshotTimeoutMs ?? 5_000,
    report: (r) => reports.push(r),
  });
  return { m, reports };
}

const never = new AbortController().signal;
const lost = (err: unknown) => err instanceof LullError && err.code === "LULL_E_GROUP_COORDINATOR_LOST";

describe("a member of a group coordinated on another node", () => {
  it("reports its barrier and its copy, and goes on only at the coordinator's word", async () => {
    const { m, reports } = member();
    let passed = false;
    const barrier = m.barrierEnded(Consistency.CONSISTENCY_APP, never).then(() => (passed = true));
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(passed, false, "no word yet: the member waits at its barrier");
    assert.deepEqual(reports, [{ step: GroupMemberStep.GROUP_MEMBER_STEP_BARRIER_ENDED, consistency: Consistency.CONSISTENCY_APP }]);
    assert.equal(m.release(GroupMemberGo.GROUP_MEMBER_GO_BARRIER), true);
    await barrier;
    const point = m.snapshotTaken(1234, never);
    assert.equal(reports[1]?.snapshotAt, 1234);
    assert.equal(m.pastPoint, false);
    assert.equal(m.release(GroupMemberGo.GROUP_MEMBER_GO_POINT), true);
    await point;
    assert.equal(m.pastPoint, true);
    m.coordinatorGone("its stream closed");
    assert.equal(m.signal.aborted, false, "after the point a lost coordinator changes nothing");
    assert.equal(m.release(GroupMemberGo.GROUP_MEMBER_GO_FAIL, "LULL_E_CANCELLED", "too late"), false, "nor does a FAIL");
    m.close();
  });

  it("stops with LULL_E_GROUP_COORDINATOR_LOST when the coordinator's stream closes at the barrier", async () => {
    const { m } = member();
    const barrier = m.barrierEnded(Consistency.CONSISTENCY_APP, never);
    m.coordinatorGone("its stream closed");
    await assert.rejects(barrier, lost);
    assert.ok(m.signal.aborted && lost(m.signal.reason), "the run's signal aborts with the failure");
    assert.match(m.failure?.message ?? "", /the coordinating node pve1 went away before every member's snapshot existed/);
    m.close();
  });

  it("gives up by its own hold deadline when no word comes (a partition: nothing closes)", async () => {
    const { m } = member({ holdMs: 150 });
    const started = Date.now();
    await assert.rejects(m.barrierEnded(Consistency.CONSISTENCY_APP, never), lost);
    assert.ok(Date.now() - started < 2_000);
    assert.match(m.failure?.message ?? "", /no word from the coordinating node pve1 within 150 ms of joining/);
    m.close();
  });

  it("gives up waiting for the point after its snapshot timeout, and takes the coordinator's FAIL with its code", async () => {
    const a = member({ snapshotTimeoutMs: 100 });
    a.m.release(GroupMemberGo.GROUP_MEMBER_GO_BARRIER);
    await assert.rejects(a.m.snapshotTaken(1, never), (err: unknown) => lost(err) && /did not reach the snapshot point within 100 ms/.test((err as Error).message));
    a.m.close();

    const b = member();
    const waiting = b.m.barrierEnded(Consistency.CONSISTENCY_APP, never);
    assert.equal(b.m.release(GroupMemberGo.GROUP_MEMBER_GO_FAIL, "LULL_E_GROUP_MEMBER_FAILED", "member 101 failed in quiescing"), true);
    await assert.rejects(waiting, (err: unknown) => err instanceof LullError && err.code === "LULL_E_GROUP_MEMBER_FAILED" && /member 101 failed/.test(err.message));
    b.m.close();
  });

  it("without a copy waits at its barrier for the point", async () => {
    const { m } = member({ makesCopy: false });
    const barrier = m.barrierEnded(Consistency.CONSISTENCY_APP, never);
    m.release(GroupMemberGo.GROUP_MEMBER_GO_BARRIER);
    let passed = false;
    void barrier.then(() => (passed = true));
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(passed, false);
    m.release(GroupMemberGo.GROUP_MEMBER_GO_POINT);
    await barrier;
    m.close();
  });

  it("is found by job id after the local coordinator's memberships, and by run and guest for the coordinator's word", () => {
    const registry = new RemoteMemberships();
    const { m } = member();
    registry.add("j-1", m);
    const local = { membershipOf: (id: string) => (id === "j-0" ? ({ groupRunId: "g-local" } as never) : undefined) };
    const either = eitherMembership(local, registry);
    assert.equal(either.membershipOf("j-1"), m);
    assert.equal((either.membershipOf("j-0") as { groupRunId: string }).groupRunId, "g-local");
    assert.equal(registry.find("g-00000000000000000000000000", "201")?.jobId, "j-1");
    registry.remove("j-1");
    assert.equal(either.membershipOf("j-1"), undefined);
  });
});

describe("ReleaseGroupMember", () => {
  it("takes the word only of the node that asked the member to join (or an operator's)", async () => {
    const { createRemoteGroupHandlers } = await import("../api/remote-group-handlers.js");
    const memberships = new RemoteMemberships();
    const handlers = createRemoteGroupHandlers({ memberships, log: silentLogger() } as unknown as Parameters<typeof createRemoteGroupHandlers>[0]);
    const { m } = member();
    memberships.add("j-1", m);
    const req = { groupRunId: "g-00000000000000000000000000", guestId: "201", go: GroupMemberGo.GROUP_MEMBER_GO_BARRIER, errorCode: "", errorMessage: "" };
    assert.throws(
      () => handlers.releaseGroupMember(req, { kind: "node", id: "node:pve3", node: "pve3" }),
      (err: unknown) => err instanceof LullError && err.code === "LULL_E_PERMISSION_DENIED" && /pve3 did not ask guest 201 to join .* \(node pve1 did\)/.test(err.message),
    );
    assert.deepEqual(handlers.releaseGroupMember(req, { kind: "node", id: "node:pve1", node: "pve1" }), { accepted: true });
    assert.deepEqual(handlers.releaseGroupMember(req, { kind: "operator", id: "local", via: "socket" }), { accepted: false }, "past the barrier already");
    assert.throws(() => handlers.releaseGroupMember({ ...req, guestId: "202" }, { kind: "node", id: "node:pve1", node: "pve1" }), /runs no member 202/);
    m.close();
  });
});
