// lullctl against the real agent in process (real SQLite and gRPC, a scripted engine, a simulated
// controller), reached over a TCP relay to its operator socket that a test can cut.
import assert from "node:assert/strict";
import { after, test } from "node:test";
import { Phase } from "@lull/proto";
import { waitForEnd } from "@lull/agent/testing";
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

async function lullctl(agent: LullctlAgent, argv: string[], signal?: AbortSignal): Promise<{ code: number; out: CapturedOutput }> {
  const out = captureOutput();
  const code = await runLullctl({ argv, env: { LULL_AGENT: agent.address }, out, ...(signal ? { signal } : {}) });
  return { code, out };
}

test("backup --wait shows each phase once, in order, and ends with downtime, total, consistency and archive", async () => {
  const agent = await realAgent();
  const { code, out } = await lullctl(agent, ["backup", "demo", "--wait"]);
  assert.equal(code, 0, out.stderr);
  const phases = out.lines.map((l) => /^\s+\+\d+\.\d{3}s  (\w+)/.exec(l)?.[1]).filter(Boolean);
  assert.deepEqual(phases, ["queued", "quiescing", "stack", "note", "snapshotting", "snapshotted", "stack", "archiving", "done"]);
  assert.match(out.stdout, /stack app resumed \(downtime 42 ms\)/);
  assert.match(out.stdout, /archived 2.93 KiB of 2.93 KiB \(100%\)/, "plain progress lines when stdout is not a terminal");
  assert.match(out.stdout, /^downtime {5}app: 42 ms \(resumed early, at snapshotted\)$/m);
  assert.match(out.stdout, /^total {8}\d+ ms$/m);
  assert.match(out.stdout, /^consistency  app \(mode copy\)$/m);
  assert.match(out.stdout, /^archive {6}\/var\/lib\/lull\/archives\/demo\/j-[0-9a-z]{26}\.tar\.zst \(2.00 KiB\)$/m);
  assert.equal(out.stderr, "");
});

test("backup --wait waits for a stack that reports its resume after the job ended", async () => {
  const agent = await realAgent();
  agent.engine.script.resumeAfterEnd = true;
  const { code, out } = await lullctl(agent, ["backup", "demo", "--wait"]);
  assert.equal(code, 0, out.stderr);
  const tail = out.lines.slice(out.lines.findIndex((l) => /\+\d+\.\d{3}s  done$/.test(l)));
  assert.match(tail[1] ?? "", /waiting up to 10 s for app to report resumed/);
  assert.match(tail[2] ?? "", /\+\d+\.\d{3}s  stack app resumed \(downtime 42 ms\)$/);
  assert.match(out.stdout, /^downtime {5}app: 42 ms/m);
});

test("a failed backup exits 1 with the job's stable error code; --json prints the job", async () => {
  const agent = await realAgent();
  agent.engine.script.outcome = "failed";
  const { code, out } = await lullctl(agent, ["--json", "backup", "demo", "--wait"]);
  assert.equal(code, 1);
  assert.match(out.stderr, /^lullctl: LULL_E_NO_SPACE: archive dir is full \(failed in archiving\)$/m);
  // The timeline streams first (wait.test.ts); the job is in the summary line, before the error line.
  const doc = out.lines.map((l) => JSON.parse(l)).find((d) => d.type === "summary");
  assert.equal(doc.created, true);
  assert.equal(doc.job.phase, "failed");
  assert.deepEqual(doc.job.error, { code: "LULL_E_NO_SPACE", message: "archive dir is full", phase: "archiving" });
});

test("backup --wait rides out a broken event stream without missing or repeating a phase", async () => {
  const agent = await realAgent();
  agent.engine.script.stepMs = 150;
  // Cut once the job left `queued` (after StartBackup answered and the stream was open), before the
  // end; a fixed timer cut StartBackup itself on a loaded machine.
  const running = lullctl(agent, ["backup", "demo", "--wait"]);
  for (const until = Date.now() + 30_000; Date.now() < until; await new Promise((r) => setTimeout(r, 5))) {
    const [job] = (await agent.t.api.listJobs({ guestId: "" })).jobs;
    if (job && job.phase !== Phase.PHASE_QUEUED && job.phase !== Phase.PHASE_UNSPECIFIED) break;
  }
  agent.relay.cut();
  const { code, out } = await running;
  assert.equal(code, 0, out.stderr);
  assert.match(out.stderr, /lost the agent's event stream \(LULL_E_AGENT_UNREACHABLE: .+\)/);
  assert.match(out.stderr, /event stream restored; nothing was missed/);
  const phases = out.lines.map((l) => /^\s+\+\d+\.\d{3}s  (\w+)/.exec(l)?.[1]).filter(Boolean);
  assert.deepEqual(phases, ["queued", "quiescing", "stack", "note", "snapshotting", "snapshotted", "stack", "archiving", "done"]);
});

test("the same idempotency key returns the same job instead of a second backup", async () => {
  const agent = await realAgent();
  const first = await lullctl(agent, ["--json", "backup", "demo", "--key", "nightly-1"]);
  const second = await lullctl(agent, ["backup", "demo", "--key", "nightly-1"]);
  const job = JSON.parse(first.out.stdout).job;
  assert.equal(first.code, 0);
  assert.equal(second.out.stdout.trim().startsWith(`job ${job.id} already exists for this idempotency key`), true, second.out.stdout);
  assert.equal((await agent.t.api.listJobs({ guestId: "" })).jobs.length, 1);
});

test("jobs, job and cancel show what the agent holds", async () => {
  const agent = await realAgent();
  agent.engine.script.holdQueued = true; // stays in queued
  const started = JSON.parse((await lullctl(agent, ["--json", "backup", "demo"])).out.stdout).job;

  const table = await lullctl(agent, ["jobs", "--active"]);
  assert.equal(table.code, 0);
  assert.match(table.out.lines[0] ?? "", /^JOB\s+GUEST\s+PHASE\s+MODE\s+CONSISTENCY\s+CREATED\s+TOTAL\s+DOWNTIME\s+RESULT$/);
  assert.match(table.out.lines[1] ?? "", new RegExp(`^${started.id}\\s+demo\\s+queued\\s+unspecified\\s+unknown\\s+\\S+\\s+running`));

  const cancelled = await lullctl(agent, ["cancel", "demo", started.id, "--reason", "maintenance"]);
  assert.equal(cancelled.code, 0, cancelled.out.stderr);
  assert.equal(cancelled.out.stdout, `job ${started.id} cancellation requested (phase now cancelled)\n`);

  const details = await lullctl(agent, ["job", "demo", started.id]);
  assert.match(details.out.stdout, /^phase\s+cancelled$/m);
  assert.match(details.out.stdout, /^error\s+LULL_E_CANCELLED: maintenance/m);

  const again = await lullctl(agent, ["cancel", "demo", started.id]);
  assert.equal(again.code, 1);
  assert.match(again.out.stderr, /^lullctl: LULL_E_JOB_TERMINAL: job j-\w+ has already ended \(cancelled\)$/m);
  assert.equal((await lullctl(agent, ["jobs", "--active"])).out.stdout, "no jobs\n");
});

test("agent errors exit 1 with their code; an unreachable agent is LULL_E_AGENT_UNREACHABLE", async () => {
  const agent = await realAgent();
  const missing = await lullctl(agent, ["--json", "job", "demo", "j-zzzzzzzzzzzzzzzzzzzzzzzzzz"]);
  assert.equal(missing.code, 1);
  assert.deepEqual(JSON.parse(missing.out.stdout), { error: { code: "LULL_E_JOB_NOT_FOUND", message: "guest demo has no job j-zzzzzzzzzzzzzzzzzzzzzzzzzz" } });
  const unknown = await lullctl(agent, ["backup", "nosuch"]);
  assert.equal(unknown.code, 1);
  assert.match(unknown.out.stderr, /^lullctl: LULL_E_UNKNOWN_GUEST: guest nosuch is not configured on this agent$/m);

  const out = captureOutput();
  const code = await runLullctl({ argv: ["--agent", "127.0.0.1:1", "info"], env: {}, out });
  assert.equal(code, 1);
  assert.match(out.stderr, /^lullctl: LULL_E_AGENT_UNREACHABLE: .*ECONNREFUSED/m);
});

/** Runs a backup of `guestId` on the agent and waits for its end. */
async function backupOn(agent: LullctlAgent, guestId: string): Promise<void> {
  const { job } = await agent.t.api.startBackup({ guestId, idempotencyKey: `k-${Math.random()}`, requestedBy: "test" });
  await waitForEnd(agent.t, guestId, job!.id);
}

const seqsOf = (lines: readonly string[]) => lines.map((l) => Number(/^#(\d+)  /.exec(l)?.[1]));
const upTo = (n: number) => Array.from({ length: n }, (_, i) => i + 1);

test("events prints what is persisted and exits; --json gives one object per line", async () => {
  const agent = await realAgent();
  await backupOn(agent, "demo");
  await backupOn(agent, "other");
  const last = (await agent.t.api.getAgentInfo()).lastEventSeq;
  const text = await lullctl(agent, ["events", "--after", "1"]);
  assert.equal(text.code, 0);
  assert.deepEqual(seqsOf(text.out.lines), upTo(last).slice(1), "every persisted event after #1, in order");
  for (const line of text.out.lines) assert.match(line.replace(/  \S+Z  /, "  T  "), /^#\d+  T  (demo|other)  j-[0-9a-z]{26}  \S/);
  assert.ok(text.out.lines.some((l) => / {2}other {2}j-\w+ {2}done$/.test(l)), text.out.stdout);
  const filtered = await lullctl(agent, ["--json", "events", "--guest", "demo"]);
  const docs = filtered.out.lines.map((l) => JSON.parse(l));
  assert.ok(docs.length > 0 && docs.every((d) => d.guestId === "demo"), "only demo's events");
  assert.deepEqual(docs.map((d) => d.seq), [...docs.map((d) => d.seq)].sort((a, b) => a - b), "in order");
  assert.equal(docs[0].seq, 1);
  assert.equal(docs.at(-1).kind, "phase");
});

test("events --follow survives an agent restart: every event exactly once, in order", async () => {
  const agent = await realAgent();
  await backupOn(agent, "demo");
  const stop = new AbortController();
  const out = captureOutput();
  const running = runLullctl({ argv: ["events", "--follow"], env: { LULL_AGENT: agent.address }, out, signal: stop.signal });
  const waitForLast = async () => {
    const last = (await agent.t.api.getAgentInfo()).lastEventSeq;
    for (let i = 0; i < 400 && !seqsOf(out.lines).includes(last); i++) await new Promise((r) => setTimeout(r, 25));
    assert.ok(seqsOf(out.lines).includes(last), `saw #${last}; stdout: ${out.stdout}`);
  };
  await waitForLast();
  agent.relay.cut(); // the network drops the stream
  await backupOn(agent, "demo"); // written while the watcher is away (or reconnecting)
  await waitForLast();

  await agent.restart(); // the agent dies; the next instance persists more events
  await backupOn(agent, "demo");
  await waitForLast();
  stop.abort();
  assert.equal(await running, 130);
  assert.deepEqual(seqsOf(out.lines), upTo((await agent.t.api.getAgentInfo()).lastEventSeq));
  assert.match(out.stderr, /event stream broken \(LULL_E_AGENT_UNREACHABLE: .*\); reconnecting to resume after #\d+/);
  assert.match(out.stderr, /event stream reconnected/);
});
