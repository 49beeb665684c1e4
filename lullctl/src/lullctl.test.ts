// lullctl against a real gRPC server (the fake agent) on 127.0.0.1, in process.
import assert from "node:assert/strict";
import { after, test } from "node:test";
import { EventKind } from "@lull/proto";
import { captureOutput, type CapturedOutput } from "./output.js";
import { runLullctl } from "./run.js";
import { FakeAgent } from "./testing/fake-agent.js";

const agents: FakeAgent[] = [];
after(async () => {
  for (const a of agents) await a.stop();
});

async function fakeAgent(): Promise<FakeAgent> {
  const agent = await FakeAgent.start();
  agents.push(agent);
  return agent;
}

async function lullctl(agent: FakeAgent, argv: string[], signal?: AbortSignal): Promise<{ code: number; out: CapturedOutput }> {
  const out = captureOutput();
  const code = await runLullctl({ argv, env: { LULL_AGENT: agent.address }, out, ...(signal ? { signal } : {}) });
  return { code, out };
}

test("backup --wait shows each phase once, in order, and ends with downtime, total, consistency and archive", async () => {
  const agent = await fakeAgent();
  const { code, out } = await lullctl(agent, ["backup", "demo", "--wait"]);
  assert.equal(code, 0, out.stderr);
  const phases = out.lines.map((l) => /^\s+\+\d+\.\d{3}s  (\w+)/.exec(l)?.[1]).filter(Boolean);
  assert.deepEqual(phases, ["queued", "quiescing", "stack", "snapshotting", "snapshotted", "stack", "archiving", "done"]);
  assert.match(out.stdout, /stack app resumed \(downtime 42 ms\)/);
  assert.match(out.stdout, /archived 2.93 KiB of 2.93 KiB \(100%\)/, "plain progress lines when stdout is not a terminal");
  assert.match(out.stdout, /^downtime {5}app: 42 ms \(resumed early, at snapshotted\)$/m);
  assert.match(out.stdout, /^total {8}\d+ ms$/m);
  assert.match(out.stdout, /^consistency  app \(mode copy\)$/m);
  assert.match(out.stdout, /^archive {6}\/var\/lib\/lull\/archives\/demo\/j-0+1\.tar\.zst \(2.00 KiB\)$/m);
  assert.equal(out.stderr, "");
});

test("backup --wait waits for a stack that reports its resume after the job ended", async () => {
  const agent = await fakeAgent();
  agent.onStartBackup = (guest) => agent.runTimeline(guest, "done", 15, true);
  const { code, out } = await lullctl(agent, ["backup", "demo", "--wait"]);
  assert.equal(code, 0, out.stderr);
  const tail = out.lines.slice(out.lines.findIndex((l) => /\+\d+\.\d{3}s  done$/.test(l)));
  assert.match(tail[1] ?? "", /waiting up to 10 s for app to report resumed/);
  assert.match(tail[2] ?? "", /\+\d+\.\d{3}s  stack app resumed \(downtime 42 ms\)$/);
  assert.match(out.stdout, /^downtime {5}app: 42 ms/m);
});

test("a failed backup exits 1 with the job's stable error code; --json prints the job", async () => {
  const agent = await fakeAgent();
  agent.onStartBackup = (guest) => agent.runTimeline(guest, "failed");
  const { code, out } = await lullctl(agent, ["--json", "backup", "demo", "--wait"]);
  assert.equal(code, 1);
  assert.match(out.stderr, /^lullctl: LULL_E_NO_SPACE: archive dir is full \(failed in archiving\)$/m);
  const doc = JSON.parse(out.stdout);
  assert.equal(doc.created, true);
  assert.equal(doc.job.phase, "failed");
  assert.deepEqual(doc.job.error, { code: "LULL_E_NO_SPACE", message: "archive dir is full", phase: "archiving" });
});

test("backup --wait rides out a broken event stream without missing or repeating a phase", async () => {
  const agent = await fakeAgent();
  agent.onStartBackup = (guest) => {
    const job = agent.runTimeline(guest, "done", 40);
    setTimeout(() => agent.breakStreams(), 70); // after quiescing, before the end
    return job;
  };
  const { code, out } = await lullctl(agent, ["backup", "demo", "--wait"]);
  assert.equal(code, 0, out.stderr);
  assert.match(out.stderr, /lost the agent's event stream \(LULL_E_AGENT_UNREACHABLE: stream broken by the test\)/);
  assert.match(out.stderr, /event stream restored; nothing was missed/);
  const phases = out.lines.map((l) => /^\s+\+\d+\.\d{3}s  (\w+)/.exec(l)?.[1]).filter(Boolean);
  assert.deepEqual(phases, ["queued", "quiescing", "stack", "snapshotting", "snapshotted", "stack", "archiving", "done"]);
});

test("the same idempotency key returns the same job instead of a second backup", async () => {
  const agent = await fakeAgent();
  const first = await lullctl(agent, ["--json", "backup", "demo", "--key", "nightly-1"]);
  const second = await lullctl(agent, ["backup", "demo", "--key", "nightly-1"]);
  const job = JSON.parse(first.out.stdout).job;
  assert.equal(first.code, 0);
  assert.equal(second.out.stdout.trim().startsWith(`job ${job.id} already exists for this idempotency key`), true, second.out.stdout);
  assert.equal(agent.state.jobs.size, 1);
});

test("jobs, job and cancel show what the agent holds", async () => {
  const agent = await fakeAgent();
  agent.onStartBackup = (guest) => agent.runTimeline(guest, "done", 60_000); // stays in queued
  const started = JSON.parse((await lullctl(agent, ["--json", "backup", "demo"])).out.stdout).job;

  const table = await lullctl(agent, ["jobs", "--active"]);
  assert.equal(table.code, 0);
  assert.match(table.out.lines[0] ?? "", /^JOB\s+GUEST\s+PHASE\s+MODE\s+CONSISTENCY\s+CREATED\s+TOTAL\s+DOWNTIME\s+RESULT$/);
  assert.match(table.out.lines[1] ?? "", new RegExp(`^${started.id}\\s+demo\\s+queued\\s+copy\\s+unknown\\s+\\S+\\s+running`));

  const cancelled = await lullctl(agent, ["cancel", "demo", started.id, "--reason", "maintenance"]);
  assert.equal(cancelled.code, 0, cancelled.out.stderr);
  assert.equal(cancelled.out.stdout, `job ${started.id} cancellation requested (phase now cancelled)\n`);

  const details = await lullctl(agent, ["job", "demo", started.id]);
  assert.match(details.out.stdout, /^phase\s+cancelled$/m);
  assert.match(details.out.stdout, /^error\s+LULL_E_CANCELLED: maintenance/m);

  const again = await lullctl(agent, ["cancel", "demo", started.id]);
  assert.equal(again.code, 1);
  assert.match(again.out.stderr, /^lullctl: LULL_E_JOB_TERMINAL: job j-\w+ has ended$/m);
  assert.equal((await lullctl(agent, ["jobs", "--active"])).out.stdout, "no jobs\n");
});

test("agent errors exit 1 with their code; an unreachable agent is LULL_E_AGENT_UNREACHABLE", async () => {
  const agent = await fakeAgent();
  const missing = await lullctl(agent, ["--json", "job", "demo", "j-zzzzzzzzzzzzzzzzzzzzzzzzzz"]);
  assert.equal(missing.code, 1);
  assert.deepEqual(JSON.parse(missing.out.stdout), { error: { code: "LULL_E_JOB_NOT_FOUND", message: "no job j-zzzzzzzzzzzzzzzzzzzzzzzzzz" } });
  const unknown = await lullctl(agent, ["backup", "nosuch"]);
  assert.equal(unknown.code, 1);
  assert.match(unknown.out.stderr, /^lullctl: LULL_E_UNKNOWN_GUEST: guest nosuch is not configured$/m);

  const out = captureOutput();
  const code = await runLullctl({ argv: ["--agent", "127.0.0.1:1", "info"], env: {}, out });
  assert.equal(code, 1);
  assert.match(out.stderr, /^lullctl: LULL_E_AGENT_UNREACHABLE: .*ECONNREFUSED/m);
});

test("events prints what is persisted and exits; --json gives one object per line", async () => {
  const agent = await fakeAgent();
  for (let i = 0; i < 3; i++) agent.emit({ jobId: "j-a", guestId: "demo", kind: EventKind.EVENT_KIND_NOTE, message: `note ${i}` });
  agent.emit({ jobId: "j-b", guestId: "other", kind: EventKind.EVENT_KIND_NOTE, message: "not for demo" });
  const text = await lullctl(agent, ["events", "--after", "1"]);
  assert.equal(text.code, 0);
  assert.deepEqual(text.out.lines.map((l) => l.replace(/  \S+Z  /, "  T  ")), [
    "#2  T  demo  j-a  note: note 1",
    "#3  T  demo  j-a  note: note 2",
    "#4  T  other  j-b  note: not for demo",
  ]);
  const filtered = await lullctl(agent, ["--json", "events", "--guest", "demo"]);
  const docs = filtered.out.lines.map((l) => JSON.parse(l));
  assert.deepEqual(docs.map((d) => [d.seq, d.kind, d.message]), [[1, "note", "note 0"], [2, "note", "note 1"], [3, "note", "note 2"]]);
});

test("events --follow survives an agent restart: every event exactly once, in order", async () => {
  const first = await fakeAgent();
  const emit = (a: FakeAgent, n: number) => a.emit({ jobId: "j-a", guestId: "demo", kind: EventKind.EVENT_KIND_NOTE, message: `n${n}` });
  emit(first, 1);
  emit(first, 2);
  const stop = new AbortController();
  const out = captureOutput();
  const running = runLullctl({ argv: ["events", "--follow"], env: { LULL_AGENT: first.address }, out, signal: stop.signal });
  const waitFor = async (n: number) => {
    for (let i = 0; i < 200 && !out.stdout.includes(`note: n${n}\n`); i++) await new Promise((r) => setTimeout(r, 25));
    assert.ok(out.stdout.includes(`note: n${n}\n`), `saw n${n}; stdout: ${out.stdout}`);
  };
  await waitFor(2);
  emit(first, 3);
  await waitFor(3);
  first.breakStreams();
  emit(first, 4); // written while the watcher is away
  await waitFor(4);

  await first.stop(); // the agent dies; events 5 and 6 are persisted by the next instance
  emit(first, 5);
  const second = await FakeAgent.start(first.port, first.state);
  agents.push(second);
  emit(second, 6);
  await waitFor(6);
  stop.abort();
  assert.equal(await running, 130);
  assert.deepEqual(out.lines.map((l) => /note: (n\d)/.exec(l)?.[1]), ["n1", "n2", "n3", "n4", "n5", "n6"]);
  assert.match(out.stderr, /event stream broken \(LULL_E_AGENT_UNREACHABLE: .*\); reconnecting to resume after #3/);
  assert.match(out.stderr, /event stream reconnected/);
});
