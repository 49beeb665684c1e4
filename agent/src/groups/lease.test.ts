// The group's pmxcfs lease with the real handlers, coordinator, runner and SQLite: a run with a
// member on another node takes `lull-group-<id>` before anything exists and gives it back when the
// run ended; losing it before the snapshot point fails the run with LULL_E_GROUP_LEASE_LOST. The
// other node is a scripted stand-in for its two RPCs (JoinGroupRun answers JOINED, then ENDED once
// it is told FAIL); the cluster file system is a directory laid out like /etc/pve (Pmxcfs).
import { strict as assert } from "node:assert";
import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, it } from "node:test";
import { GroupMemberGo, GroupMemberStep, Job, Phase, type GroupMemberReport, type ReleaseGroupMemberRequest } from "@lull/proto";
import type { AgentApi, ClusterPeers } from "@lull/shared";
import { scaledTiming } from "../schedules/lease.js";
import { groupFixture, type GroupFixture } from "./testing/group-fixture.js";
import { TimelineEngine } from "./testing/timeline-engine.js";

let fixture: GroupFixture | undefined;
let root: string | undefined;
afterEach(async () => {
  await fixture?.close();
  fixture = undefined;
  if (root) rmSync(root, { recursive: true, force: true });
  root = undefined;
});

/** pve2 as the coordinator sees it: its member joins, and ends failed once it is told FAIL. */
function scriptedNode(): { peers: ClusterPeers; told: GroupMemberGo[] } {
  const told: GroupMemberGo[] = [];
  let endWith: ((report: GroupMemberReport | undefined) => void) | undefined;
  const ended = new Promise<GroupMemberReport | undefined>((resolve) => (endWith = resolve));
  const job = (phase: Phase, errorCode = "") => Job.fromPartial({ id: "j-01jremote0000000000000000000", guestId: "201", phase, errorCode });
  const report = (step: GroupMemberStep, j: Job): GroupMemberReport => ({ step, job: j, consistency: 0, makesCopy: true, snapshotAt: undefined });
  const raw = {
    joinGroupRun: () => {
      async function* reports(): AsyncGenerator<GroupMemberReport> {
        yield report(GroupMemberStep.GROUP_MEMBER_STEP_JOINED, job(Phase.PHASE_QUIESCING));
        const last = await ended;
        if (last) yield last;
      }
      return Object.assign(reports(), { cancel: () => endWith?.(undefined) });
    },
    releaseGroupMember: (req: ReleaseGroupMemberRequest, _md: unknown, _o: unknown, done: (err: Error | null, res: { accepted: boolean }) => void) => {
      told.push(req.go);
      if (req.go === GroupMemberGo.GROUP_MEMBER_GO_FAIL) endWith?.(report(GroupMemberStep.GROUP_MEMBER_STEP_ENDED, job(Phase.PHASE_FAILED, req.errorCode)));
      setImmediate(() => done(null, { accepted: true }));
      return { cancel: () => undefined };
    },
  };
  const peers: ClusterPeers = { self: "pve1", clientFor: async () => ({ raw }) as unknown as AgentApi, close: () => undefined };
  return { peers, told };
}

function setUp(): { f: GroupFixture; lock: string; told: GroupMemberGo[] } {
  root = mkdtempSync(join(tmpdir(), "lull-group-lease-"));
  // pmxcfs's quorum flag is the write bit of /etc/pve/local.
  mkdirSync(join(root, "local"));
  mkdirSync(join(root, "priv"));
  const { peers, told } = scriptedNode();
  fixture = groupFixture({
    engine: new TimelineEngine(),
    guests: ["101"],
    peers,
    config: {
      node: "pve1",
      cluster: { enabled: true },
      groups: [{ id: "shop", guests: ["101"], remote: [{ guest: "201", node: "pve2" }], quiesceTimeoutMs: 10_000 }],
      // The cluster lease's windows scaled from 120 s to 2.4 s: renewed every 200 ms.
      schedules: { clusterRoot: root, lease: scaledTiming(2_400) },
    },
  });
  return { f: fixture, lock: join(root, "priv", "lock", "lull-group-shop"), told };
}

describe("the group's pmxcfs lease", () => {
  it("is taken before the run exists and given back when the run ended", async () => {
    const { f, lock, told } = setUp();
    f.register("101", "web");
    const run = await f.start({ groupId: "shop" });
    assert.ok(existsSync(lock), "the run holds lull-group-shop");
    await f.waitFor("101 quiescing", () => f.activeJob("101").phase === Phase.PHASE_QUIESCING);
    f.refuse("101", "web", "not now");
    const ended = await f.waitForRunEnd(run.id);
    assert.equal(ended.phase, Phase.PHASE_FAILED);
    assert.equal(ended.errorCode, "LULL_E_QUIESCE_REFUSED");
    assert.ok(told.includes(GroupMemberGo.GROUP_MEMBER_GO_FAIL), "pve2's member was told to stop");
    await f.waitFor("the lease to be given back", () => !existsSync(lock));
  });

  it("lost before the snapshot point (another node took the lock) fails the run with LULL_E_GROUP_LEASE_LOST and stops every member", async () => {
    const { f, lock, told } = setUp();
    f.register("101", "web");
    const run = await f.start({ groupId: "shop" });
    await f.waitFor("101 quiescing", () => f.activeJob("101").phase === Phase.PHASE_QUIESCING);
    // pmxcfs freed the lock (as after 120 s without a renew): the next renew fails.
    rmSync(lock, { recursive: true });
    const ended = await f.waitForRunEnd(run.id);
    assert.equal(ended.phase, Phase.PHASE_FAILED);
    assert.equal(ended.errorCode, "LULL_E_GROUP_LEASE_LOST", ended.errorMessage);
    assert.match(ended.errorMessage, /lost the group's pmxcfs lease lull-group-shop/);
    const member = f.store.listJobs({ guestId: "101", limit: 1 })[0];
    assert.equal(member?.phase, Phase.PHASE_FAILED);
    assert.equal(member?.errorCode, "LULL_E_GROUP_MEMBER_FAILED");
    assert.ok(told.includes(GroupMemberGo.GROUP_MEMBER_GO_FAIL), "pve2's member was told to stop");
  });
});
