// Consistency groups end to end with real processes: one lull-agent, two `dir` (copy) guests with
// three demo-app stacks and their real lull-controllers, and lullctl as the operator runs it.
// Proven from the apps' own records, the controllers' stop/start ledgers and the persisted events
// (read back as one stream with `lullctl events --group`): every stack was stopped before the
// first snapshot, none ran again before the last snapshot existed, every archive restores with no
// record written after the group's (earliest) snapshot; when one member cannot quiesce, the whole
// group fails and every stopped stack runs again; after a kill -9 of the agent inside a run,
// the restarted agent settles the run from its members and the site converges; and an operator's
// `lullctl cancel --group` stops a run as a whole, before its snapshot point and while archiving.
import assert from "node:assert/strict";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { execa } from "execa";
import { checkRestoredRecords, restoreArchive } from "../demo/restore-check.js";
import { readRecords, recordsFile } from "../demo/records.js";
import { ENTRY_POINTS, awaitConvergence, makeTempDir, removeDir, sleep, waitFor, Site, type GroupJson, type JobJson, type SiteOptions, type SiteStack } from "../support/index.js";

interface EventJson {
  seq: number;
  at: string;
  jobId: string;
  guestId: string;
  kind: string;
  phase: string;
  stack: string | null;
  stackState: string | null;
  groupRunId: string | null;
}

async function lullctl(site: Site, args: string[], timeoutMs = 120_000) {
  return execa(process.execPath, [ENTRY_POINTS.lullctl, "--socket", site.agent.socketPath, ...args], { reject: false, timeout: timeoutMs, shell: false });
}

async function groupEvents(site: Site, runId: string): Promise<EventJson[]> {
  const r = await lullctl(site, ["--json", "events", "--group", runId], 30_000);
  assert.equal(r.exitCode, 0, r.stderr);
  return r.stdout.split("\n").filter(Boolean).map((l) => JSON.parse(l) as EventJson);
}

async function withShop(
  run: (site: Site) => Promise<void>,
  quiesceTimeoutMs = 20_000,
  agentFailpoint?: string,
  slowAgentCommands?: SiteOptions["slowAgentCommands"],
): Promise<void> {
  const site = await Site.start({
    ...(agentFailpoint ? { agentFailpoint } : {}),
    ...(slowAgentCommands ? { slowAgentCommands } : {}),
    guests: [
      { id: "g1", storage: "dir-copy", stacks: ["web"], seedBytes: 8 * 1024 ** 2 },
      { id: "g2", storage: "dir-copy", stacks: ["db", "cache"], seedBytes: 8 * 1024 ** 2 },
    ],
    agentConfig: { zstdLevel: 9, groups: [{ id: "shop", guests: ["g1", "g2"], quiesceTimeoutMs }] },
  });
  try {
    await run(site);
  } finally {
    await site.teardown();
  }
}

const ms = (iso: string | null) => (iso ? Date.parse(iso) : NaN);
const lastOf = (stack: SiteStack, verb: "stop" | "start", event: "begin" | "end") => stack.ledgerEntries().filter((e) => e.verb === verb && e.event === event).at(-1);

test("a group of two dir guests and three stacks: one barrier, one snapshot point, restorable archives, one event stream", async () => {
  await withShop(async (site) => {
    await sleep(300); // the apps write records before the backup
    const r = await lullctl(site, ["--json", "backup", "--group", "shop", "--wait"]);
    assert.equal(r.exitCode, 0, `${r.stderr}\n${r.stdout}`);
    const group = (JSON.parse(r.stdout) as { group: GroupJson }).group;
    assert.equal(group.phase, "done");
    assert.equal(group.consistency, "app");
    assert.deepEqual(group.guestIds, ["g1", "g2"]);
    assert.deepEqual(group.members.map((m) => [m.guestId, m.phase]), [["g1", "done"], ["g2", "done"]]);
    for (const m of group.members) for (const s of m.stacks) assert.deepEqual([s.stack, s.state, s.resumedEarly], [s.stack, "resumed", true]);

    const firstSnapshot = ms(group.snapshotAt);
    const lastSnapshot = Math.max(...group.members.map((m) => ms(m.snapshotAt)));
    assert.equal(firstSnapshot, Math.min(...group.members.map((m) => ms(m.snapshotAt))), "the run's snapshot_at is the earliest member's");
    for (const stack of site.stacks) {
      const stopped = lastOf(stack, "stop", "end");
      const started = lastOf(stack, "start", "begin");
      assert.ok(stopped && stopped.at <= firstSnapshot, `${stack.key} was stopped before the first snapshot`);
      assert.ok(started && started.at >= lastSnapshot, `${stack.key} started ${lastSnapshot - (started?.at ?? 0)} ms before the last snapshot existed`);
    }

    // Every archive restores, with nothing written after the group's snapshot point.
    for (const member of group.members) {
      const restoreDir = await makeTempDir("lull-group-restore-");
      try {
        await restoreArchive(member.archive!.path, restoreDir);
        for (const stack of site.stacksOf(member.guestId)) {
          const restored = readRecords(recordsFile(join(restoreDir, stack.name)));
          const live = readRecords(recordsFile(stack.dataDir));
          for (const check of checkRestoredRecords(restored, live, new Date(firstSnapshot))) assert.ok(check.ok, `${stack.key}: ${check.name}: ${check.detail}`);
        }
      } finally {
        await removeDir(restoreDir);
      }
    }

    // The run's events and both members' come as one stream, in an order that proves the barrier.
    const events = await groupEvents(site, group.id);
    assert.ok(events.every((e) => e.groupRunId === group.id));
    assert.deepEqual([...new Set(events.map((e) => e.guestId ?? ""))].sort(), ["", "g1", "g2"]);
    const acks = events.filter((e) => e.kind === "stack" && e.stackState === "quiesced");
    assert.equal(acks.length, 3);
    const firstSnapshotting = Math.min(...events.filter((e) => e.kind === "phase" && e.phase === "snapshotting").map((e) => e.seq));
    assert.ok(acks.every((a) => a.seq < firstSnapshotting), "every stack's ack precedes the first snapshot");
    const point = events.find((e) => e.kind === "group" && e.phase === "snapshotted");
    assert.ok(point);
    assert.ok(events.filter((e) => e.kind === "phase" && e.phase === "snapshotted").every((e) => e.seq > point.seq && ms(e.at) >= lastSnapshot));
    assert.ok(events.some((e) => e.kind === "group" && e.phase === "done"), "the run's end is in the stream");

    const jobs = group.members.map((m) => ({ guestId: m.guestId, jobId: m.id }));
    const report = await awaitConvergence(site, { jobs, sinceMs: 0, timeoutMs: 15_000 });
    assert.deepEqual(report.problems, [], "every stack runs, nothing is left behind");
  });
});

test("a member that cannot quiesce fails the whole group: no snapshot, every stopped stack runs again", async () => {
  await withShop(async (site) => {
    // g2's cache controller dies (kill -9): its lease is still alive, so g2's barrier waits for it.
    await site.stack("g2", "cache").controller!.kill9();
    const r = await lullctl(site, ["--json", "backup", "--group", "shop", "--wait", "--policy", "fail"]);
    assert.equal(r.exitCode, 1, r.stdout);
    const group = (JSON.parse(r.stdout) as { group: GroupJson }).group;
    assert.equal(group.phase, "failed");
    assert.equal(group.error?.code, "LULL_E_QUIESCE_TIMEOUT");
    assert.deepEqual(group.error?.failedGuests, ["g1", "g2"]);
    assert.deepEqual(group.members.map((m) => [m.guestId, m.error?.code]), [["g1", "LULL_E_GROUP_MEMBER_FAILED"], ["g2", "LULL_E_QUIESCE_TIMEOUT"]]);
    assert.match(r.stderr, /^lullctl: LULL_E_QUIESCE_TIMEOUT: 2 of 2 members did not finish/m);
    const events = await groupEvents(site, group.id);
    assert.equal(events.filter((e) => e.phase === "snapshotting" || e.phase === "snapshotted").length, 0, "no member took a snapshot");

    // The stacks that stopped (web, db) were started again by their controllers at the jobs' end.
    for (const key of [["g1", "web"], ["g2", "db"]] as const) {
      const stack = site.stack(key[0], key[1]);
      const stopped = lastOf(stack, "stop", "end");
      const started = lastOf(stack, "start", "end");
      assert.ok(stopped && started && started.at > stopped.at, `${stack.key} runs again after its stop`);
    }
    await site.startController(site.stack("g2", "cache"));
    const jobs = group.members.map((m) => ({ guestId: m.guestId, jobId: m.id }));
    const report = await awaitConvergence(site, { jobs, sinceMs: 0, timeoutMs: 15_000 });
    assert.deepEqual(report.problems, [], "every stack runs, nothing is left behind");
  }, 6_000); // the barrier waits for the dead controller this long; g1's live one must ack within it even on a loaded machine
});

test("agent kill -9 inside a group run: after the restart the run failed with its members named, every stack runs again, nothing is left", async () => {
  await withShop(
    async (site) => {
      const r = await lullctl(site, ["--json", "backup", "--group", "shop"]);
      assert.equal(r.exitCode, 0, r.stderr);
      const runId = (JSON.parse(r.stdout) as { group: GroupJson }).group.id;
      await site.agent.proc.waitForLog((l) => l.msg === "paused at failpoint", 30_000);
      await site.agent.kill9();
      await site.restartAgent();

      const shown = await lullctl(site, ["--json", "group", runId], 30_000);
      assert.equal(shown.exitCode, 0, shown.stderr);
      const group = JSON.parse(shown.stdout) as GroupJson & { error: { code: string; phase: string; failedGuests: string[] } };
      assert.equal(group.phase, "failed");
      assert.equal(group.error.code, "LULL_E_AGENT_RESTARTED");
      assert.equal(group.error.phase, "snapshotting", "the run had passed its barrier when the agent died");
      assert.deepEqual(group.error.failedGuests, ["g1", "g2"]);
      assert.ok(group.members.every((m) => m.phase === "failed" && m.error?.code === "LULL_E_AGENT_RESTARTED"));
      const events = await groupEvents(site, runId);
      assert.ok(events.some((e) => e.kind === "group" && e.phase === "failed"), "the settled end is in the run's stream");

      const jobs = group.members.map((m) => ({ guestId: m.guestId, jobId: m.id }));
      const report = await awaitConvergence(site, { jobs, sinceMs: 0, timeoutMs: 20_000 });
      assert.deepEqual(report.problems, [], "every stack runs again, no staging copy or partial archive is left");
    },
    20_000,
    "pause-in:snapshotting",
  );
});


/** Polls `lullctl group` until the run satisfies `until`. */
async function waitForRun(site: Site, runId: string, what: string, until: (g: GroupJson) => boolean): Promise<GroupJson> {
  return waitFor(`group run ${runId}: ${what}`, async () => {
    const r = await lullctl(site, ["--json", "group", runId], 30_000);
    const g = r.exitCode === 0 ? (JSON.parse(r.stdout) as GroupJson) : undefined;
    return g && until(g) ? g : undefined;
  }, 20_000);
}

test("lullctl cancel --group: before the snapshot point every stopped stack runs again and no copy is taken; while archiving the partial archives go; both runs end cancelled", async () => {
  await withShop(
    async (site) => {
      const since = Date.now();
      // Before the point: g2's cache controller died (its lease is alive), so the run waits at its barrier with web and db stopped.
      await site.stack("g2", "cache").controller!.kill9();
      const a = await lullctl(site, ["--json", "backup", "--group", "shop"]);
      assert.equal(a.exitCode, 0, a.stderr);
      const runA = (JSON.parse(a.stdout) as { group: GroupJson }).group.id;
      const stopped = (g: GroupJson) => g.members.flatMap((m) => m.stacks.filter((s) => s.state === "quiesced").map((s) => s.stack)).sort().join(",");
      await waitForRun(site, runA, "web and db stopped", (g) => stopped(g) === "db,web");
      const cancelA = await lullctl(site, ["--json", "cancel", "--group", "shop", "--reason", "e2e: before the point"]);
      assert.equal(cancelA.exitCode, 0, cancelA.stderr);
      const cancelledA = (JSON.parse(cancelA.stdout) as { group: GroupJson }).group;
      assert.equal(cancelledA.phase, "cancelled");
      assert.deepEqual(cancelledA.members.map((m) => [m.guestId, m.phase, m.error?.phase]), [["g1", "cancelled", "quiescing"], ["g2", "cancelled", "quiescing"]]);
      const eventsA = await groupEvents(site, runA);
      assert.equal(eventsA.filter((e) => e.phase === "snapshotting" || e.phase === "snapshotted").length, 0, "no member took a copy");
      assert.ok(eventsA.some((e) => e.kind === "group" && e.phase === "cancelled"), "the run's end is in its stream");
      for (const key of [["g1", "web"], ["g2", "db"]] as const) {
        const stack = site.stack(key[0], key[1]);
        await waitFor(`${stack.key} to run again`, () => {
          const stop = lastOf(stack, "stop", "end");
          const start = lastOf(stack, "start", "end");
          return stop && start && start.at > stop.at;
        }, 15_000);
      }
      await site.startController(site.stack("g2", "cache"));

      // After the point: the archives are slow (zstd starts late), the run is cancelled while both members archive.
      const b = await lullctl(site, ["--json", "backup", "--group", "shop"]);
      assert.equal(b.exitCode, 0, b.stderr);
      const runB = (JSON.parse(b.stdout) as { group: GroupJson }).group.id;
      await waitForRun(site, runB, "archiving", (g) => g.phase === "archiving" && g.members.every((m) => m.phase === "archiving"));
      const archiveDir = String(site.agent.config.archiveDir);
      await waitFor("both partial archives", () => readdirSync(archiveDir).filter((n) => n.includes("partial-")).length === 2, 10_000);
      const cancelB = await lullctl(site, ["cancel", "--group", runB, "--reason", "e2e: while archiving"]);
      assert.equal(cancelB.exitCode, 0, cancelB.stderr);
      assert.match(cancelB.stdout, new RegExp(`^group run ${runB} \\(group shop\\) cancelled$`, "m"));
      const shown = await lullctl(site, ["--json", "group", runB]);
      const cancelledB = JSON.parse(shown.stdout) as GroupJson;
      assert.equal(cancelledB.phase, "cancelled");
      assert.ok(cancelledB.snapshotAt, "run B had passed its snapshot point");
      assert.deepEqual(cancelledB.members.map((m) => [m.guestId, m.phase, m.error?.phase, m.archive]), [["g1", "cancelled", "archiving", null], ["g2", "cancelled", "archiving", null]]);
      for (const m of cancelledB.members) for (const s of m.stacks) assert.deepEqual([s.stack, s.state, s.resumedEarly], [s.stack, "resumed", true], "stacks ran again at the snapshot point");
      assert.deepEqual(readdirSync(archiveDir).filter((n) => n.includes("partial-")), [], "no partial archive is left");

      const jobs = [...cancelledA.members, ...cancelledB.members].map((m) => ({ guestId: m.guestId, jobId: m.id }));
      const report = await awaitConvergence(site, { jobs, sinceMs: since, timeoutMs: 20_000 });
      assert.deepEqual(report.problems, [], "every stack runs, nothing is left behind");
    },
    20_000,
    undefined,
    [{ command: "zstd", delayMs: 10_000 }], // long enough that a loaded machine still cancels while zstd waits (a cancel ends it at once)
  );
});
