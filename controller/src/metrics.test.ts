// The controller's metrics, scraped over its own listener during a real loop against the
// in-process agent: resumes by cause, the marker's age while the stack is held, agent reachability.
import assert from "node:assert/strict";
import { test } from "node:test";
import { Phase, StackState } from "@lull/proto";
import { waitUntil } from "@lull/agent/testing";
import { Harness } from "./testing/harness.js";

async function scrape(h: Harness): Promise<string> {
  const res = await fetch(`http://${h.controller.metricsAddress}/metrics`);
  assert.equal(res.status, 200);
  return res.text();
}

const sample = (text: string, name: string, labels = ""): number | undefined => {
  const line = text.split("\n").find((l) => l.startsWith(`${name}{`) && l.includes(labels));
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(" ") + 1));
};

test("metrics: marker age while held, a resume counted by cause, agent reachability", async (t) => {
  const h = await Harness.create({ metrics: { address: "127.0.0.1:0" } });
  t.after(() => h.cleanup());
  await h.startRegistered();
  assert.match(h.controller.metricsAddress ?? "", /^127\.0\.0\.1:\d+$/);

  let text = await scrape(h);
  assert.match(text, /^# TYPE lull_controller_resumes_total counter$/m);
  assert.match(text, /^# TYPE lull_controller_marker_age_seconds gauge$/m);
  assert.equal(sample(text, "lull_controller_marker_age_seconds"), undefined, "no marker, no age");
  assert.equal(sample(text, "lull_controller_marker_present"), 0);
  assert.equal(sample(text, "lull_controller_agent_reachable", 'guest="demo",stack="app"'), 1);

  const job = await h.agent.createJob();
  await h.agent.to(job.id, Phase.PHASE_QUIESCING);
  await h.agent.waitForStack(job.id, "app", StackState.STACK_STATE_QUIESCED);
  await new Promise((r) => setTimeout(r, 200));
  text = await scrape(h);
  const age = sample(text, "lull_controller_marker_age_seconds", `job_id="${job.id}"`) ?? -1;
  assert.ok(age >= 0.2 && age < 10, `marker age ${age} s while the stack is held`);
  assert.equal(sample(text, "lull_controller_marker_present"), 1);

  await h.agent.to(job.id, Phase.PHASE_SNAPSHOTTING);
  await h.agent.to(job.id, Phase.PHASE_SNAPSHOTTED);
  await h.agent.waitForStack(job.id, "app", StackState.STACK_STATE_RESUMED);
  const downtimeMs = (await h.agent.stack(job.id, "app"))?.downtimeMs ?? -1;
  text = await scrape(h);
  assert.equal(sample(text, "lull_controller_resumes_total", 'cause="snapshotted"'), 1);
  assert.equal(sample(text, "lull_controller_downtime_seconds_sum", 'cause="snapshotted"'), downtimeMs / 1000);
  assert.equal(sample(text, "lull_controller_marker_age_seconds"), undefined, "marker cleared");
  assert.equal(sample(text, "lull_controller_resumes_total", 'cause="deadline"'), undefined, "no made-up zero series for causes that did not happen");

  await h.agent.kill();
  await waitUntil(async () => sample(await scrape(h), "lull_controller_agent_reachable") === 0, 10_000, "reachable drops to 0");
});
