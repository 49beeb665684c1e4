// kill -9 of a real lull-controller at each of its failpoints, against the real lull-agent and a
// real stack: after the marker and before the stop, after the stop and before the acknowledgement,
// between `snapshotted` and the resume. The restarted controller finds the marker, re-attaches or
// resumes, and tracks the job to its end; the stack runs, the marker is gone, and the stack was
// stopped exactly once (the driver's ledger counts every invocation, across both processes).
import assert from "node:assert/strict";
import { test } from "node:test";
import { Phase, type Job } from "@lull/proto";
import { EventFollower, Site, awaitConvergence, countInvocations, type LogLine } from "../support/index.js";

interface Case {
  failpoint: "after-marker" | "after-stop" | "before-resume";
  /** The stack's state while the controller is frozen at the failpoint. */
  appAtCrash: "running" | "stopped";
  stopsAtCrash: number;
  /** What the restarted controller's start-up recovery ends with. */
  recovered: "holding" | "resumed";
}

const CASES: Case[] = [
  { failpoint: "after-marker", appAtCrash: "running", stopsAtCrash: 0, recovered: "holding" },
  { failpoint: "after-stop", appAtCrash: "stopped", stopsAtCrash: 1, recovered: "holding" },
  { failpoint: "before-resume", appAtCrash: "stopped", stopsAtCrash: 1, recovered: "resumed" },
];

const byJob = (msg: string, jobId: string) => (l: LogLine) => l.msg === msg && l.jobId === jobId;

for (const c of CASES) {
  test(`controller kill -9 at ${c.failpoint}: the restarted controller recovers, the stack runs, stopped once, the job is tracked to done`, async () => {
    const site = await Site.start({
      guests: [{ id: "g1", storage: "dir-copy", stacks: ["app"], seedBytes: 8 * 1024 ** 2 }],
      agentConfig: { quiesce: { timeoutMs: 30_000, policy: "fail" } },
      // zstd starts 4 s late: the job stays in archiving (after the snapshot) while the controller restarts.
      slowAgentCommands: [{ command: "zstd", delayMs: 4_000 }],
      controller: { resumeDeadlineMs: 60_000 },
    });
    const follower = new EventFollower({ address: site.agent.socketAddress });
    try {
      const stack = site.stack("g1");
      const frozen = await site.startController(stack, { failpoint: c.failpoint });
      const since = Date.now();
      const { job: started } = await site.agent.client().startBackup("g1");
      const jobId = started!.id;

      await frozen.proc.waitForLog((l) => l.msg === "paused at failpoint" && l.failpoint === c.failpoint, 30_000);
      assert.equal(stack.markerPresent(), true, "the marker is written before anything is stopped");
      assert.equal(await stack.status(), c.appAtCrash);
      assert.equal(countInvocations(stack.ledgerEntries(), "stop", since), c.stopsAtCrash);
      if (c.failpoint === "before-resume") {
        const job = await site.agent.client().getJob("g1", jobId);
        assert.ok(job.phase >= Phase.PHASE_SNAPSHOTTED, "frozen only once the snapshot exists");
      }
      await frozen.kill9();

      const restarted = await site.startController(stack);
      const found = await restarted.proc.waitForLog((l) => l.msg === "marker found at start — the stack may be down", 10_000);
      assert.equal(found.jobId, jobId);
      const recovered = await restarted.proc.waitForLog((l) => l.msg === "recovered", 20_000);
      assert.equal(recovered.outcome, c.recovered);
      const resumed = await restarted.proc.waitForLog(byJob("stack resumed", jobId), 30_000);
      assert.equal(resumed.early, true, "resumed at snapshotted, not at the end");
      assert.equal(resumed.cause, "snapshotted");
      const done = await restarted.proc.waitForLog(byJob("backup done", jobId), 60_000);
      assert.equal(done.phase, "done", `the job ended ${String(done.phase)}: ${String(done.errorCode)} ${String(done.errorMessage)}`);

      const report = await awaitConvergence(site, { jobs: [{ guestId: "g1", jobId }], sinceMs: since, followers: [follower], timeoutMs: 15_000 });
      assert.deepEqual(report.problems, []);
      const entries = stack.ledgerEntries();
      assert.equal(countInvocations(entries, "stop", since), 1, "stopped exactly once, across both controller processes");
      assert.equal(countInvocations(entries, "start", since), 1, "started exactly once");
      const job: Job = report.jobs[0]!;
      assert.equal(job.phase, Phase.PHASE_DONE);
      assert.equal(job.stacks[0]?.resumedEarly, true, "the agent heard about the early resume from the restarted controller");
      if (c.failpoint === "after-marker") assert.ok(restarted.proc.logs.some(byJob("stack stopped", jobId)), "the restarted controller did the stop");
      else assert.ok(restarted.proc.logs.some((l) => l.msg === "re-attached: the stack is already stopped") || c.failpoint === "before-resume");
    } finally {
      await follower.stop();
      await site.teardown();
    }
  });
}
