// The shared ledger's unit of work: what a unit commits is published and logged after the
// outermost commit, in order; what a unit (or a nested part of it) rolled back is never seen.
import { strict as assert } from "node:assert";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { EventKind, QuiescePolicy, type Event } from "@lull/proto";
import { createLogger, systemClock } from "@lull/shared";
import { EventBus } from "../events/bus.js";
import { GroupLedger } from "../groups/ledger.js";
import { memberJobKey, newGroupRunId, newGroupRunRecord } from "../groups/group-run.js";
import { eventFor, newJobRecord, type JobRecord } from "../jobs/job.js";
import { newJobId } from "../jobs/job-id.js";
import { JobLedger } from "../jobs/ledger.js";
import { JobStore } from "../jobs/store.js";

const dirs: string[] = [];
after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

function setUp() {
  const dir = mkdtempSync(join(tmpdir(), "lull-ledger-"));
  dirs.push(dir);
  const lines: Array<Record<string, unknown>> = [];
  const log = createLogger({ name: "test", level: "info", destination: { write: (line: string) => void lines.push(JSON.parse(line)) } });
  const store = JobStore.open(join(dir, "agent.db"));
  const bus = new EventBus(log);
  const published: Event[] = [];
  bus.subscribe({}, (e) => void published.push(e));
  const jobs = new JobLedger({ store, bus, log, clock: systemClock });
  return { store, jobs, groups: new GroupLedger(jobs), published, lines };
}

let n = 0;
function job(guestId: string, groupRunId?: string): JobRecord {
  n += 1;
  const now = Date.now();
  const key = groupRunId ? memberJobKey(groupRunId, guestId) : `k-${n}`;
  return newJobRecord({ id: newJobId(now), guestId, engine: "native", policy: QuiescePolicy.QUIESCE_POLICY_FAIL, idempotencyKey: key, quiesceTimeoutMs: 5000, requestedBy: "t", now, groupRunId });
}

describe("ledger: one unit of work", () => {
  it("publishes a unit's events only after its outermost commit, in sequence order, and logs every phase change then", () => {
    const { jobs, published, lines } = setUp();
    const a = job("a");
    const b = job("b");
    jobs.ledger.commit(() => {
      jobs.create(a, eventFor(a, EventKind.EVENT_KIND_PHASE));
      jobs.create(b, eventFor(b, EventKind.EVENT_KIND_PHASE));
      jobs.apply(a.id, { type: "start-quiesce", stacks: ["web"] });
      assert.deepEqual(published, [], "nothing is published inside the transaction");
      assert.equal(lines.filter((l) => l.msg === "job phase changed").length, 0, "nothing is logged inside it");
    });
    assert.deepEqual(published.map((e) => e.jobId), [a.id, b.id, a.id]);
    assert.deepEqual(published.map((e) => e.seq), [1, 2, 3]);
    const changes = lines.filter((l) => l.msg === "job phase changed").map((l) => [l.jobId, l.from, l.to]);
    assert.deepEqual(changes, [[a.id, null, "queued"], [b.id, null, "queued"], [a.id, "queued", "quiescing"]]);
  });

  it("a nested change that throws is rolled back with its events; the rest of the unit commits", () => {
    const { store, jobs, published } = setUp();
    const a = job("a");
    const clash = { ...job("a"), idempotencyKey: "other" };
    jobs.ledger.commit(() => {
      jobs.create(a, eventFor(a, EventKind.EVENT_KIND_PHASE));
      assert.throws(() => jobs.create(clash, eventFor(clash, EventKind.EVENT_KIND_PHASE)), /already has a job/);
    });
    assert.deepEqual(published.map((e) => e.jobId), [a.id], "the busy guest's job and event are not seen");
    assert.equal(store.getJob(clash.id), undefined);
    assert.equal(store.events.lastSeq(), 1);
  });

  it("changes to one record in one unit read it once; after a nested part rolled back, the next change reads the database again", () => {
    const { store, jobs } = setUp();
    const a = job("a");
    jobs.create(a, eventFor(a, EventKind.EVENT_KIND_PHASE));
    jobs.apply(a.id, { type: "start-quiesce", stacks: ["s1", "s2", "s3", "s4"] });
    let reads = 0;
    const getJob = store.getJob.bind(store);
    store.getJob = (id: string) => {
      reads += 1;
      return getJob(id);
    };
    const ack = (stack: string) => jobs.apply(a.id, (_job, now) => ({ type: "stack-acknowledged", stack, at: now, alreadyStopped: false }));
    jobs.ledger.commit(() => {
      ack("s1");
      ack("s2");
      assert.equal(reads, 1, "the second change starts from the record the first saved");
      assert.throws(() =>
        jobs.ledger.commit(() => {
          ack("s3");
          throw new Error("changed my mind");
        }),
      );
      const after = ack("s4");
      assert.equal(reads, 2, "the rolled-back part may have saved the record: it is read again");
      assert.deepEqual(after.stacks.map((s) => [s.stack, s.state]), store.getJob(a.id)!.stacks.map((s) => [s.stack, s.state]), "what the change saw is what is stored");
      assert.equal(after.stacks.find((s) => s.stack === "s3")?.acknowledgedAt, undefined, "s3's acknowledgement was rolled back");
    });
    store.getJob = getJob;
    const stored = store.getJob(a.id)!;
    assert.deepEqual(stored.stacks.filter((s) => s.acknowledgedAt !== undefined).map((s) => s.stack), ["s1", "s2", "s4"]);
  });

  it("a unit that throws publishes and logs nothing and writes nothing", () => {
    const { store, jobs, published, lines } = setUp();
    const a = job("a");
    assert.throws(() =>
      jobs.ledger.commit(() => {
        jobs.create(a, eventFor(a, EventKind.EVENT_KIND_PHASE));
        throw new Error("changed my mind");
      }),
    );
    assert.deepEqual(published, []);
    assert.equal(lines.filter((l) => l.msg === "job phase changed").length, 0);
    assert.equal(store.getJob(a.id), undefined);
  });

  it("a group run is created with its member jobs through the jobs' ledger: every member's creation is logged like any job's", () => {
    const { groups, published, lines } = setUp();
    const now = Date.now();
    const runId = newGroupRunId(now);
    const run = newGroupRunRecord({ id: runId, groupId: "shop", guestIds: ["db", "web"], policy: QuiescePolicy.QUIESCE_POLICY_FAIL, idempotencyKey: "g-key", quiesceTimeoutMs: 5000, requestedBy: "t", now });
    const members = [job("db", runId), job("web", runId)];
    assert.equal(groups.create(run, members).created, true);
    assert.deepEqual(published.map((e) => e.jobId), ["", ...members.map((m) => m.id)], "the run's event, then each member's");
    assert.deepEqual(
      lines.filter((l) => l.msg === "job phase changed").map((l) => l.jobId),
      members.map((m) => m.id),
    );
    assert.ok(lines.some((l) => l.msg === "group phase changed" && l.groupRunId === runId && l.to === "queued"));
  });
});
