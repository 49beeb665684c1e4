// kill -9 of the real lull-agent while a job is quiescing or archiving (failpoint
// `pause-in:<phase>`), with two real controllers: `app` resumes early (at snapshotted), `db` holds
// its stack to the end. The controllers resume their stacks at once when the restarted agent
// answers that the job ended, or by the resume deadline when the agent stays down. The restarted
// agent settles the job as failed in the phase it died in (LULL_E_AGENT_RESTARTED), and no
// snapshot, staging copy or partial archive of it is left.
import assert from "node:assert/strict";
import { test } from "node:test";
import { Phase } from "@lull/proto";
import { phaseName } from "@lull/shared";
import { outageOf } from "../e2e/timeline.js";
import { readRecords, recordsFile } from "../demo/records.js";
import { EventFollower, Site, awaitConvergence, loopBtrfsUnavailable, sleep, type GuestStorage, type LogLine, type SiteStack, requireAvailable } from "../support/index.js";

const DEADLINE_MS = 10_000;
/** The controllers start their stacks this long before the deadline, so they run again by it. */
const LEAD_MS = 3_000;
const byJob = (msg: string, jobId: string) => (l: LogLine) => l.msg === msg && l.jobId === jobId;

interface Case {
  phase: "quiescing" | "archiving";
  storage: GuestStorage;
  agentBack: boolean;
}

const CASES: Case[] = [
  { phase: "quiescing", storage: "dir-copy", agentBack: true },
  { phase: "quiescing", storage: "dir-copy", agentBack: false },
  { phase: "archiving", storage: "dir-copy", agentBack: true },
  { phase: "archiving", storage: "dir-copy", agentBack: false },
  { phase: "archiving", storage: "btrfs", agentBack: true },
  { phase: "archiving", storage: "btrfs", agentBack: false },
];

async function waitResumed(stack: SiteStack, jobId: string, timeoutMs: number): Promise<LogLine & { at: number }> {
  const line = await stack.controller!.proc.waitForLog(byJob("stack resumed", jobId), timeoutMs);
  return { ...line, at: Date.parse(String(line.time)) };
}

/**
 * Without the agent, the controller resumes its stack by the deadline (the marker's stoppedAt + the
 * deadline): the timer fires at the resume point (the deadline minus the lead), the start command
 * runs within 1 s of it, and the app itself runs again (its first record after the outage) by the
 * deadline: DESIGN invariant 2, "never past the resume deadline".
 */
async function assertResumedByDeadline(s: SiteStack, jobId: string, since: number, killedAt: number): Promise<void> {
  const passed = await s.controller!.proc.waitForLog(byJob("resume deadline near — resuming the stack", jobId), DEADLINE_MS + 5_000);
  const deadline = Date.parse(String(passed.resumeDeadline));
  const resumeAt = Date.parse(String(passed.resumeAt));
  assert.equal(deadline - resumeAt, LEAD_MS, `${s.name}: the configured lead`);
  const firedLateMs = Date.parse(String(passed.time)) - resumeAt;
  assert.ok(firedLateMs >= 0 && firedLateMs <= 250, `${s.name}: the deadline timer fired ${firedLateMs} ms after the resume point`);
  const resumed = await waitResumed(s, jobId, 10_000);
  assert.equal(resumed.cause, "deadline", `${s.name} resumed by its deadline`);
  const start = s.ledgerEntries().find((e) => e.verb === "start" && e.event === "begin" && e.at >= killedAt);
  const startRunAt = start?.spawnedAt ?? start?.at ?? NaN;
  assert.ok(startRunAt - resumeAt <= 1_000, `${s.name}: the start command ran ${startRunAt - resumeAt} ms after the resume point`);
  const outage = outageOf(readRecords(recordsFile(s.dataDir)), since);
  const runningLateMs = outage.firstAfter.at - deadline;
  assert.ok(runningLateMs <= 0, `${s.name} ran again ${runningLateMs} ms after its resume deadline`);
  assert.ok(outage.firstAfter.at > killedAt, `${s.name} came back after the agent died (no answer from it needed)`);
}

async function runCase(c: Case): Promise<void> {
  const site = await Site.start({
    guests: [{ id: "g1", storage: c.storage, stacks: [{ name: "app", resume: "early" }, { name: "db", resume: "end" }], seedBytes: 8 * 1024 ** 2 }],
    agentFailpoint: `pause-in:${c.phase}`,
    controller: { resumeDeadlineMs: c.agentBack ? 60_000 : DEADLINE_MS, resumeLeadMs: LEAD_MS },
  });
  const follower = new EventFollower({ address: site.agent.socketAddress });
  try {
    const [app, db] = [site.stack("g1", "app"), site.stack("g1", "db")];
    const since = Date.now();
    const { job: started } = await site.agent.client().startBackup("g1");
    const jobId = started!.id;
    await site.agent.proc.waitForLog((l) => l.msg === "paused at failpoint" && l.jobId === jobId, 30_000);
    if (c.phase === "quiescing") {
      for (const s of [app, db]) await s.controller!.proc.waitForLog(byJob("quiesce acknowledged", jobId), 20_000);
    } else {
      await waitResumed(app, jobId, 20_000); // at snapshotted, before the agent froze in archiving
      const before = await site.leftovers();
      const kind = c.storage === "btrfs" ? /^snapshot: / : /^staging: /;
      assert.ok(before.some((l) => kind.test(l)), `the job's point-in-time copy exists before the crash: ${before.join(", ")}`);
    }
    const held = c.phase === "quiescing" ? [app, db] : [db];
    for (const s of held) assert.equal(await s.status(), "stopped", `${s.name} is held stopped by its controller`);

    await site.agent.kill9();
    const killedAt = Date.now();
    if (c.agentBack) {
      await sleep(1_000);
      for (const s of held) {
        assert.equal(await s.status(), "stopped", `${s.name} stays stopped while the agent is gone and the deadline is far`);
        assert.equal(s.markerPresent(), true);
      }
      await site.restartAgent();
      const backAt = Date.now();
      for (const s of held) {
        const resumed = await waitResumed(s, jobId, 15_000);
        assert.equal(resumed.cause, "terminal", `${s.name} resumed because the job ended`);
        assert.ok(resumed.at - backAt <= 5_000, `${s.name} resumed ${resumed.at - backAt} ms after the agent was back`);
      }
    } else {
      for (const s of held) await assertResumedByDeadline(s, jobId, since, killedAt);
      assert.ok(site.agent.proc.exitStatus, "the agent was down the whole time");
      await site.restartAgent();
    }

    const job = await site.agent.client().waitForEnd("g1", jobId, 20_000);
    assert.equal(job.phase, Phase.PHASE_FAILED);
    assert.equal(phaseName(job.failedIn), c.phase);
    assert.equal(job.errorCode, "LULL_E_AGENT_RESTARTED");
    for (const s of [app, db]) {
      const done = await s.controller!.proc.waitForLog(byJob("backup done", jobId), 20_000);
      assert.equal(done.phase, "failed");
      assert.equal(done.failedIn, c.phase, `${s.name}'s controller tracked the job to its end`);
    }
    const report = await awaitConvergence(site, { jobs: [{ guestId: "g1", jobId }], sinceMs: since, followers: [follower], timeoutMs: 15_000 });
    assert.deepEqual(report.problems, []);
    assert.ok(site.agent.proc.logs.some((l) => l.msg === "interrupted job settled" && l.jobId === jobId));
  } finally {
    await follower.stop();
    await site.teardown();
  }
}

for (const c of CASES) {
  const back = c.agentBack ? "restarted at once: the held stack resumes on its terminal answer" : "stays down: the held stack resumes by its deadline";
  test(`agent kill -9 while ${c.phase} (${c.storage}), ${back}; the job fails honestly and nothing is left`, async (t) => {
    const why = c.storage === "btrfs" ? await loopBtrfsUnavailable() : undefined;
    requireAvailable("a loop-mounted btrfs (root, btrfs-progs)", why);
    await runCase(c);
  });
}
