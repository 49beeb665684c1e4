// `lullctl wait` and the JSON stream of `--json backup --wait` / `--json wait`, against the real agent
// in process (real SQLite and gRPC, a scripted engine, a simulated controller). The schema checked
// here is the one lullctl/README.md documents ("JSON stream"): every line's keys, per type.
import assert from "node:assert/strict";
import { after, test } from "node:test";
import { captureOutput, type CapturedOutput } from "./output.js";
import { runLullctl } from "./run.js";
import { startLullctlAgent, type LullctlAgent } from "./testing/agent.js";

const agents: LullctlAgent[] = [];
after(async () => {
  for (const a of agents) await a.stop();
});

async function realAgent(): Promise<LullctlAgent> {
  const agent = await startLullctlAgent();
  agents.push(agent);
  return agent;
}

async function lullctl(agent: LullctlAgent, argv: string[]): Promise<{ code: number; out: CapturedOutput; docs: Array<Record<string, any>> }> {
  const out = captureOutput();
  const code = await runLullctl({ argv, env: { LULL_AGENT: agent.address }, out });
  const docs = argv.includes("--json") ? out.lines.map((l) => JSON.parse(l) as Record<string, any>) : [];
  return { code, out, docs };
}

const COMMON = ["type", "seq", "at", "offsetMs", "jobId", "guestId"];
/** The documented keys of each line type. */
const KEYS: Record<string, string[]> = {
  phase: [...COMMON, "phase", "mode", "consistency", "snapshotAt", "error"],
  stack: [...COMMON, "stack", "state", "downtimeMs", "reason"],
  note: [...COMMON, "message", "errorCode"],
  progress: [...COMMON, "bytesDone", "bytesTotal"],
  summary: ["type", "until", "reached", "ended", "job"],
  error: ["type", "error"],
};

function checkSchema(docs: ReadonlyArray<Record<string, any>>, extraSummaryKeys: string[] = []): void {
  for (const d of docs) {
    const want = d.type === "summary" ? [...KEYS.summary!, ...extraSummaryKeys] : KEYS[d.type];
    assert.ok(want, `unknown line type ${d.type}`);
    assert.deepEqual(Object.keys(d).sort(), [...want].sort(), `keys of a ${d.type} line`);
    if (COMMON.every((k) => k in d)) {
      assert.match(d.at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
      assert.equal(typeof d.offsetMs, "number");
      assert.equal(typeof d.seq, "number");
    }
  }
  const timeline = docs.filter((d) => "seq" in d);
  assert.deepEqual(timeline.map((d) => d.seq), [...timeline.map((d) => d.seq)].sort((a, b) => a - b), "in order");
  assert.deepEqual(timeline.map((d) => d.offsetMs), [...timeline.map((d) => d.offsetMs)].sort((a, b) => a - b), "offsets grow");
}

test("--json backup --wait streams the phase timeline, one object per line, then the summary", async () => {
  const agent = await realAgent();
  const { code, out, docs } = await lullctl(agent, ["--json", "backup", "demo", "--wait"]);
  assert.equal(code, 0, out.stderr);
  checkSchema(docs, ["created"]);
  assert.deepEqual(docs.filter((d) => d.type === "phase").map((d) => d.phase), ["queued", "quiescing", "snapshotting", "snapshotted", "archiving", "done"]);
  const stackStates = docs.filter((d) => d.type === "stack").map((d) => `${d.stack}:${d.state}`);
  assert.deepEqual(stackStates.slice(-2), ["app:quiesced", "app:resumed"]);
  const resumed = docs.find((d) => d.type === "stack" && d.state === "resumed");
  assert.equal(resumed?.downtimeMs, 42);
  assert.deepEqual(docs.filter((d) => d.type === "progress").map((d) => [d.bytesDone, d.bytesTotal]).at(-1), [3000, 3000]);
  const snapshotted = docs.find((d) => d.type === "phase" && d.phase === "snapshotted");
  assert.match(snapshotted?.snapshotAt ?? "", /Z$/);
  assert.equal(snapshotted?.mode, "copy");
  const last = docs.at(-1)!;
  assert.equal(last.type, "summary");
  assert.equal(last.created, true);
  assert.equal(last.until, "done");
  assert.equal(last.reached, true);
  assert.equal(last.ended, true);
  assert.equal(last.job.phase, "done");
  assert.equal(last.job.consistency, "app");
  assert.ok(docs.every((d) => d.type === "summary" || d.jobId === last.job.id));
  assert.equal(out.stderr, "");
});

test("--json backup --wait of a failed job: the failed phase carries the error, then summary, then an error line; exit 1", async () => {
  const agent = await realAgent();
  agent.engine.script.outcome = "failed";
  const { code, docs } = await lullctl(agent, ["--json", "backup", "demo", "--wait"]);
  assert.equal(code, 1);
  checkSchema(docs, ["created"]);
  const failed = docs.find((d) => d.type === "phase" && d.phase === "failed");
  assert.deepEqual(failed?.error, { code: "LULL_E_NO_SPACE", message: "archive dir is full" });
  assert.deepEqual(docs.slice(-2).map((d) => d.type), ["summary", "error"]);
  assert.equal(docs.at(-2)?.reached, false);
  assert.deepEqual(docs.at(-1)?.error, { code: "LULL_E_NO_SPACE", message: "archive dir is full (failed in archiving)" });
});

test("wait --until snapshotted returns 0 once the snapshot exists, before the job ends", async () => {
  const agent = await realAgent();
  agent.engine.script.stepMs = 150;
  const { job } = await agent.t.api.startBackup({ guestId: "demo", idempotencyKey: "w1", requestedBy: "test" });
  const { code, out, docs } = await lullctl(agent, ["--json", "wait", "demo", job!.id, "--until", "snapshotted"]);
  assert.equal(code, 0, out.stderr);
  checkSchema(docs);
  const phases = docs.filter((d) => d.type === "phase").map((d) => d.phase);
  assert.deepEqual(phases, ["queued", "quiescing", "snapshotting", "snapshotted"], "the timeline from the job's start up to its snapshot");
  const last = docs.at(-1)!;
  assert.equal(last.type, "summary");
  assert.equal(last.until, "snapshotted");
  assert.equal(last.reached, true);
  assert.equal(last.ended, false, "the job goes on");
  assert.ok(last.job.snapshotAt);
  const text = await lullctl(agent, ["wait", "demo", job!.id, "--until", "snapshotted"]);
  assert.equal(text.code, 0);
  assert.match(text.out.stdout, new RegExp(`^job ${job!.id} snapshotted at \\S+ \\(mode copy; now \\w+\\)$`, "m"));
});

test("wait --until done follows to the end (text: the timeline and the summary)", async () => {
  const agent = await realAgent();
  agent.engine.script.stepMs = 60;
  const { job } = await agent.t.api.startBackup({ guestId: "demo", idempotencyKey: "w2", requestedBy: "test" });
  const { code, out } = await lullctl(agent, ["wait", "demo", job!.id, "--until", "done"]);
  assert.equal(code, 0, out.stderr);
  assert.match(out.lines[0] ?? "", new RegExp(`^waiting for job ${job!.id} of guest demo \\(\\w+ now\\) until done$`));
  const phases = out.lines.map((l) => /^\s+\+\d+\.\d{3}s  (\w+)/.exec(l)?.[1]).filter(Boolean);
  assert.deepEqual(phases.filter((p) => p !== "stack" && p !== "note"), ["queued", "quiescing", "snapshotting", "snapshotted", "archiving", "done"]);
  assert.match(out.stdout, /^consistency  app \(mode copy\)$/m);
  // An ended job: answered at once, whatever is waited for.
  const again = await lullctl(agent, ["--json", "wait", "demo", job!.id, "--until", "snapshotted"]);
  assert.equal(again.code, 0);
  assert.deepEqual(again.docs.map((d) => d.type), ["summary"]);
});

test("wait exit codes: 1 failed, 3 no snapshot point, 124 timeout, 2 usage, 1 unknown job", async () => {
  const agent = await realAgent();
  agent.engine.script.outcome = "failed";
  agent.engine.script.stepMs = 40;
  const failing = (await agent.t.api.startBackup({ guestId: "demo", idempotencyKey: "f", requestedBy: "test" })).job!;
  const failed = await lullctl(agent, ["--json", "wait", "demo", failing.id, "--until", "done"]);
  assert.equal(failed.code, 1);
  assert.deepEqual(failed.docs.slice(-2).map((d) => d.type), ["summary", "error"]);
  assert.equal(failed.docs.at(-1)?.error.code, "LULL_E_NO_SPACE");

  agent.engine.script = { ...agent.engine.script, outcome: "done", noSnapshot: true };
  const stopMode = (await agent.t.api.startBackup({ guestId: "demo", idempotencyKey: "s", requestedBy: "test" })).job!;
  const none = await lullctl(agent, ["--json", "wait", "demo", stopMode.id, "--until", "snapshotted"]);
  assert.equal(none.code, 3, JSON.stringify(none.docs.at(-1)));
  checkSchema(none.docs);
  assert.equal(none.docs.at(-1)?.error.code, "LULL_E_WRONG_PHASE");
  assert.match(none.docs.at(-1)?.error.message, /without a snapshot point \(mode stop makes no point-in-time copy\)/);
  assert.equal((await lullctl(agent, ["wait", "demo", stopMode.id, "--until", "done"])).code, 0, "it does end done");

  agent.engine.script = { ...agent.engine.script, noSnapshot: false, holdQueued: true };
  const held = (await agent.t.api.startBackup({ guestId: "demo", idempotencyKey: "h", requestedBy: "test" })).job!;
  const t0 = Date.now();
  const timedOut = await lullctl(agent, ["--json", "wait", "demo", held.id, "--until", "done", "--timeout", "300"]);
  assert.equal(timedOut.code, 124);
  assert.ok(Date.now() - t0 < 5_000);
  assert.equal(timedOut.docs.at(-1)?.error.code, "LULL_E_WAIT_TIMEOUT");
  assert.equal(timedOut.docs.at(-2)?.job.phase, "queued");
  await agent.t.api.cancelJob({ guestId: "demo", jobId: held.id, reason: "test" });

  const usage = await lullctl(agent, ["wait", "demo", held.id]);
  assert.equal(usage.code, 2);
  assert.match(usage.out.stderr, /--until must be snapshotted or done, got nothing/);
  const unknown = await lullctl(agent, ["--json", "wait", "demo", "j-zzzzzzzzzzzzzzzzzzzzzzzzzz", "--until", "done"]);
  assert.equal(unknown.code, 1);
  assert.deepEqual(unknown.docs, [{ type: "error", error: { code: "LULL_E_JOB_NOT_FOUND", message: "guest demo has no job j-zzzzzzzzzzzzzzzzzzzzzzzzzz" } }]);
});
