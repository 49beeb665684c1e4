// lullctl's group commands against a real agent in process (real SQLite, gRPC on its operator
// socket), with simulated controllers that acknowledge, refuse and report their resume.
import assert from "node:assert/strict";
import { rmSync } from "node:fs";
import { afterEach, describe, it } from "node:test";
import { Phase, StackState } from "@lull/proto";
import { isAfterSnapshot, isTerminal } from "@lull/shared";
import { TimelineEngine, groupApi, startTestAgent, waitForGroup, type TestAgent } from "@lull/agent/testing";
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
async function agentWithControllers(refuse?: [string, string], engine = new TimelineEngine()): Promise<TestAgent> {
  const t = await startTestAgent({
    engine,
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

describe("lullctl cancel --group", () => {
  it("cancels the configured group's run before its snapshot point: every member cancelled, every stopped stack started again; then refuses", async () => {
    // 102's snapshot takes a minute: the run waits before its snapshot point with every stack stopped.
    const t = await agentWithControllers(undefined, new TimelineEngine({ snapshotDelayMs: { "102": 60_000 } }));
    const started = await lullctl(t, ["--json", "backup", "--group", "shop"]);
    assert.equal(started.code, 0, started.out.stderr);
    const runId = JSON.parse(started.out.stdout).group.id as string;
    const groups = groupApi(t.client);
    await waitForGroup(groups, runId, (r) => r.phase === Phase.PHASE_SNAPSHOTTING, 10_000);

    const { code, out } = await lullctl(t, ["cancel", "--group", "shop", "--reason", "wrong night"]);
    assert.equal(code, 0, out.stderr);
    assert.equal(out.lines[0], `group run ${runId} (group shop) cancelled`);
    assert.match(out.stdout, new RegExp(`^member 101  j-[0-9a-z]{26}  cancelled, .*  LULL_E_CANCELLED in snapshotting: group run ${runId} cancelled: wrong night$`, "m"));
    assert.match(out.stdout, /^member 102  j-[0-9a-z]{26}  cancelled, /m);

    // The (simulated) controllers start every stack again: the members ended without snapshotted.
    const ended = await waitForGroup(groups, runId, (r) => r.members.every((m) => m.stacks.every((s) => s.state === StackState.STACK_STATE_RESUMED)), 10_000);
    assert.deepEqual(ended.members.flatMap((m) => m.stacks.map((s) => [m.guestId, s.stack, s.resumedEarly])), [
      ["101", "web", false],
      ["102", "cache", false],
      ["102", "db", false],
    ]);

    const again = await lullctl(t, ["--json", "cancel", "--group", runId]);
    assert.equal(again.code, 1);
    assert.equal(JSON.parse(again.out.stdout).error.code, "LULL_E_JOB_TERMINAL");
    assert.match(again.out.stderr, new RegExp(`^lullctl: LULL_E_JOB_TERMINAL: group run ${runId} has already ended \\(cancelled\\)$`, "m"));
    const none = await lullctl(t, ["cancel", "--group", "shop"]);
    assert.equal(none.code, 1);
    assert.match(none.out.stderr, /^lullctl: LULL_E_GROUP_NOT_FOUND: group shop has no run that has not ended/m);
    const unknown = await lullctl(t, ["cancel", "--group", "nope"]);
    assert.match(unknown.out.stderr, /^lullctl: LULL_E_GROUP_NOT_FOUND: group nope is not configured on this agent/m);
    const list = await lullctl(t, ["groups"]);
    assert.match(list.out.stdout, new RegExp(`^${runId}\\s+shop\\s+101,102\\s+cancelled\\s+.*LULL_E_CANCELLED \\(101,102\\)$`, "m"));
  });

  it("--json answers the run by its run id; bad forms are usage errors", async () => {
    const t = await agentWithControllers(undefined, new TimelineEngine({ snapshotDelayMs: { "101": 60_000 } }));
    const started = await lullctl(t, ["--json", "backup", "101", "103"]);
    const runId = JSON.parse(started.out.stdout).group.id as string;
    const { code, out } = await lullctl(t, ["--json", "cancel", "--group", runId]);
    assert.equal(code, 0, out.stderr);
    const doc = JSON.parse(out.stdout);
    assert.equal(doc.group.id, runId);
    assert.equal(doc.group.phase, "cancelled");
    assert.equal(doc.group.error.code, "LULL_E_CANCELLED");
    assert.deepEqual(doc.group.error.failedGuests, ["101", "103"]);
    assert.match(doc.group.error.message, /^cancelled in \w+: cancelled by request; 2 of 2 members did not finish/);

    assert.deepEqual(parseInvocation(["cancel", "--group", runId, "--reason", "r"]).command, { name: "cancel-group", runId, reason: "r" });
    assert.deepEqual(parseInvocation(["cancel", "--group", "shop"]).command, { name: "cancel-group", groupId: "shop", reason: "" });
    assert.throws(() => parseInvocation(["cancel", "--group", "shop", "101", "j-0000000000aaaaaaaaaaaaaaaa"]), /cancel --group takes no <guest> <job-id>/);
    assert.throws(() => parseInvocation(["cancel", "--group", "Shop!"]), /--group must be a group run id \(g-…\) or a configured group's id/);
    assert.throws(() => parseInvocation(["cancel"]), /cancel: missing <guest> <job-id>/);
  });
});
