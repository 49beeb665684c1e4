// lullctl's group commands against a real agent in process (real SQLite, gRPC on its operator
// socket), with simulated controllers that acknowledge, refuse and report their resume.
import assert from "node:assert/strict";
import { rmSync } from "node:fs";
import { afterEach, describe, it } from "node:test";
import { Phase, StackState } from "@lull/proto";
import { isAfterSnapshot, isTerminal } from "@lull/shared";
import { TimelineEngine } from "../groups/testing/timeline-engine.js";
import { startTestAgent, type TestAgent } from "../testing/agent-harness.js";
import { parseInvocation } from "./args.js";
import { captureOutput, type CapturedOutput } from "./output.js";
import { runLullctl } from "./run.js";

let current: { t: TestAgent; stop: () => Promise<void> } | undefined;
afterEach(async () => {
  if (!current) return;
  await current.stop();
  await current.t.stop();
  rmSync(current.t.dir, { recursive: true, force: true });
  current = undefined;
});

const STACKS: Array<[string, string]> = [["101", "web"], ["102", "db"], ["102", "cache"]];

/** A real agent with guests 101–103, group `shop` = 101+102, and controllers for three stacks. */
async function agentWithControllers(refuse?: [string, string]): Promise<TestAgent> {
  const t = await startTestAgent({
    engine: new TimelineEngine(),
    guests: ["101", "102", "103"].map((id) => ({ id, driver: "dir", snapshot: "copy", volumes: [{ name: "data", path: `/nonexistent/${id}` }] })),
    config: { groups: [{ id: "shop", guests: ["101", "102"], quiesceTimeoutMs: 10_000 }] },
  });
  for (const [guestId, stack] of STACKS) await t.api.registerStack({ guestId, stack, controllerId: `ctl-${stack}` });
  let running = true;
  const stoppedAt = new Map<string, number>();
  // Each controller: acknowledge while quiescing (the refusing one refuses once every other stack
  // is stopped), resume at snapshotted or at the end.
  const step = async () => {
    const jobs = await Promise.all(STACKS.map(([guestId]) => t.api.listJobs({ guestId, limit: 1 }).then((r) => r.jobs[0])));
    const stateOf = (i: number) => jobs[i]?.stacks.find((s) => s.stack === STACKS[i]![1])?.state;
    for (const [i, [guestId, stack]] of STACKS.entries()) {
      const job = jobs[i];
      const state = stateOf(i);
      if (!job || state === undefined) continue;
      const key = `${job.id}/${stack}`;
      const refusing = refuse?.[0] === guestId && refuse[1] === stack;
      if (job.phase === Phase.PHASE_QUIESCING && state === StackState.STACK_STATE_PENDING) {
        if (!refusing) {
          await t.api.acknowledgeQuiesce({ guestId, jobId: job.id, stack });
          stoppedAt.set(key, Date.now());
        } else if (STACKS.every((_, j) => j === i || stateOf(j) === StackState.STACK_STATE_QUIESCED)) {
          await t.api.refuseQuiesce({ guestId, jobId: job.id, stack, reason: "not now" });
        }
      } else if (state === StackState.STACK_STATE_QUIESCED && (isAfterSnapshot(job.phase) || isTerminal(job.phase))) {
        const early = job.phase !== Phase.PHASE_FAILED && job.phase !== Phase.PHASE_CANCELLED;
        await t.api.reportResumed({ guestId, jobId: job.id, stack, downtimeMs: Date.now() - (stoppedAt.get(key) ?? Date.now()), early });
      }
    }
  };
  const loop = (async () => {
    while (running) {
      // A call can lose a race with the job (it moved on meanwhile): the next round looks again.
      await step().catch(() => {});
      await new Promise((r) => setTimeout(r, 15));
    }
  })();
  current = {
    t,
    stop: async () => {
      running = false;
      await loop;
    },
  };
  return t;
}

async function lullctl(t: TestAgent, argv: string[]): Promise<{ code: number; out: CapturedOutput }> {
  const out = captureOutput();
  const code = await runLullctl({ argv: ["--socket", t.agent.socketPath as string, ...argv], env: {}, out });
  return { code, out };
}

describe("lullctl backup of a group", () => {
  it("--group --wait shows the group's phases and each member's live, then every member's and stack's outcome", async () => {
    const t = await agentWithControllers();
    const { code, out } = await lullctl(t, ["backup", "--group", "shop", "--wait"]);
    assert.equal(code, 0, out.stderr + out.stdout);
    assert.match(out.lines[0] ?? "", /^backup of group shop \(101, 102\): group run g-[0-9a-z]{26} started$/);
    const groupPhases = out.lines.map((l) => /^\s+\+\d+\.\d{3}s  group  group (\w+)/.exec(l)?.[1]).filter(Boolean);
    assert.deepEqual(groupPhases, ["queued", "quiescing", "snapshotting", "snapshotted", "archiving", "done"]);
    for (const [guest, stack] of STACKS) {
      assert.match(out.stdout, new RegExp(`^\\s+\\+\\d+\\.\\d{3}s  ${guest}\\s+stack ${stack} quiesced$`, "m"));
      assert.match(out.stdout, new RegExp(`^  stack ${stack}: downtime \\d+ ms \\(resumed early, at snapshotted\\)$`, "m"));
    }
    assert.match(out.stdout, /^member 101  j-[0-9a-z]{26}  done, mode snapshot, app {2}\/archives\/101\.tar\.zst/m);
    assert.match(out.stdout, /^group {8}done, app-consistent$/m);
    assert.match(out.stdout, /^snapshot at  \S+ \(earliest member snapshot; no stack resumed before the last one\)$/m);
  });

  it("guests on the command line form an ad hoc group; --json prints the run with its members", async () => {
    const t = await agentWithControllers();
    const { code, out } = await lullctl(t, ["--json", "backup", "102", "101", "--wait"]);
    assert.equal(code, 0, out.stderr);
    const doc = JSON.parse(out.stdout);
    assert.equal(doc.created, true);
    assert.equal(doc.group.groupId, null);
    assert.deepEqual(doc.group.guestIds, ["101", "102"]);
    assert.equal(doc.group.phase, "done");
    assert.deepEqual(doc.group.members.map((m: { guestId: string; phase: string; groupRunId: string }) => [m.guestId, m.phase, m.groupRunId]), [
      ["101", "done", doc.group.id],
      ["102", "done", doc.group.id],
    ]);
  });

  it("a refusal fails the whole group: exit 1 with the cause's code and every member named", async () => {
    const t = await agentWithControllers(["102", "cache"]);
    const { code, out } = await lullctl(t, ["backup", "--group", "shop", "--wait", "--policy", "fail"]);
    assert.equal(code, 1);
    assert.match(out.stderr, /^lullctl: LULL_E_QUIESCE_REFUSED: 2 of 2 members did not finish: 101 failed in quiescing \(LULL_E_GROUP_MEMBER_FAILED\); 102 failed in quiescing \(LULL_E_QUIESCE_REFUSED: quiesce refused: cache \(refused: not now\)/m);
    assert.match(out.stdout, /^  stack web: downtime \d+ ms \(resumed at the end\)$/m, "101's stopped stack resumed at the end");
    assert.match(out.stdout, /^group {8}failed/m);
  });
});

describe("lullctl groups, group, events --group", () => {
  it("lists configured groups and runs, shows one run, and prints its events as one stream", async () => {
    const t = await agentWithControllers();
    const started = await lullctl(t, ["--json", "backup", "--group", "shop", "--wait"]);
    const runId = JSON.parse(started.out.stdout).group.id as string;

    const list = await lullctl(t, ["groups"]);
    assert.equal(list.code, 0, list.out.stderr);
    assert.match(list.out.stdout, /^GROUP\s+GUESTS\s+POLICY\s+QUIESCE TIMEOUT$/m);
    assert.match(list.out.stdout, /^shop\s+101,102\s+default\s+10.00 s$/m);
    assert.match(list.out.stdout, new RegExp(`^${runId}\\s+shop\\s+101,102\\s+done\\s+app`, "m"));
    const json = JSON.parse((await lullctl(t, ["groups", "--json", "--guest", "102"])).out.stdout);
    assert.deepEqual(json.groups.map((g: { id: string }) => g.id), [runId]);
    assert.deepEqual(json.configured.map((g: { id: string }) => g.id), ["shop"]);

    const one = await lullctl(t, ["group", runId]);
    assert.equal(one.code, 0, one.out.stderr);
    assert.match(one.out.stdout, /^snapshot at\s+\S+ \(earliest member snapshot\)$/m);
    assert.match(one.out.stdout, /^member 102 .* done/m);

    const events = await lullctl(t, ["events", "--group", runId]);
    assert.equal(events.code, 0, events.out.stderr);
    assert.match(events.out.stdout, new RegExp(`^#\\d+  \\S+  group  ${runId}  group done`, "m"));
    assert.match(events.out.stdout, /^#\d+  \S+  101  j-[0-9a-z]{26}  snapshotted/m);
    assert.ok(events.out.lines.every((l) => / (group|101|102) {2}/.test(l)), "only the run's events");

    const unknown = await lullctl(t, ["group", "g-0000000000aaaaaaaaaaaaaaaa"]);
    assert.equal(unknown.code, 1);
    assert.match(unknown.out.stderr, /LULL_E_GROUP_NOT_FOUND/);
  });

  it("parses group forms of backup, and refuses bad ones as usage errors", () => {
    assert.deepEqual(parseInvocation(["backup", "--group", "shop"]).command, { name: "group-backup", groupId: "shop", guests: [], wait: false, policy: 0, quiesceTimeoutMs: 0 });
    assert.equal(parseInvocation(["backup", "101", "102"]).command.name, "group-backup");
    assert.equal(parseInvocation(["backup", "101"]).command.name, "backup");
    assert.throws(() => parseInvocation(["backup", "--group", "Shop!"]), /--group must match/);
    assert.throws(() => parseInvocation(["backup", "101", "101"]), /listed twice/);
    assert.throws(() => parseInvocation(["group", "j-0000000000aaaaaaaaaaaaaaaa"]), /run-id is not a valid group run id/);
  });
});
