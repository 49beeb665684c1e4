// A scheduled backup through the real agent: the schedule's tick starts a job through the same
// entry point as StartBackup, the tick is recorded done with its job, and `lullctl schedules
// [--json]` shows it; an unknown schedule id is refused naming the configured ones.
import assert from "node:assert/strict";
import { test } from "node:test";
import { startTestAgent } from "@lull/agent/testing";
import { agentApiOf } from "@lull/shared";
import { captureOutput } from "./output.js";
import { runLullctl } from "./run.js";
import { ScriptedEngine } from "./testing/agent.js";

test("a schedule ticking every 5 s backs up its guest, and lullctl schedules shows the run with its result", async () => {
  const engine = new ScriptedEngine();
  const t = await startTestAgent({
    engine,
    guests: [{ id: "other", driver: "dir", snapshot: "copy", volumes: [{ name: "data", path: "/nonexistent/other" }] }],
    config: { schedules: { list: [{ id: "every5", action: "backup", schedule: "*:*:0/5", timeZone: "Europe/Berlin", guests: ["other"] }] } },
  });
  try {
    const deadline = Date.now() + 15_000;
    let last;
    while (Date.now() < deadline) {
      const r = await agentApiOf(t.client).listSchedules({ scheduleId: "every5", ticks: 5 });
      last = r.schedules[0]?.lastRun;
      if (last && last.outcome !== "running") break;
      await new Promise((r) => setTimeout(r, 200));
    }
    assert.equal(last?.outcome, "done", JSON.stringify(last));
    const job = await t.api.getJob({ guestId: "other", jobId: last!.runRef });
    assert.equal(job.requestedBy, "schedule every5");

    const out = captureOutput();
    assert.equal(await runLullctl({ argv: ["--socket", t.config.listen.socket, "schedules", "--json"], env: {}, out }), 0, out.stderr);
    const json = JSON.parse(out.stdout) as { schedules: Array<{ id: string; lastRun: { outcome: string; runRef: string }; nextRunAt: string }> };
    assert.equal(json.schedules[0]!.id, "every5");
    assert.equal(json.schedules[0]!.lastRun.outcome, "done");
    assert.ok(Date.parse(json.schedules[0]!.nextRunAt) > Date.now() - 5_000);

    const text = captureOutput();
    assert.equal(await runLullctl({ argv: ["--socket", t.config.listen.socket, "schedules"], env: {}, out: text }), 0);
    assert.match(text.stdout, /every5  backup  '\*:\*:0\/5' Europe\/Berlin  scope node  catch-up skip/);
    assert.match(text.stdout, new RegExp(`done +test-node  ${last!.runRef}`));

    const bad = captureOutput();
    assert.notEqual(await runLullctl({ argv: ["--socket", t.config.listen.socket, "schedules", "--schedule", "nope"], env: {}, out: bad }), 0);
    assert.match(bad.stdout + bad.stderr, /schedule_id "nope" is not configured \(schedules: every5\)/);
  } finally {
    await t.stop();
  }
});
