// Notifications from verification and schedules, from a real in-process agent (native engine,
// real SQLite, real verification replica) to a real local HTTP receiver: the agent was down for
// three nights (the schedule's last tick seeded in its database three days back), so its start
// records the missed ticks and ONE `schedule-missed` warning arrives with their count and reason;
// then a backup whose point fails its verification check arrives as `verification-failed`. A
// matcher by guest routes both (a schedule's notification carries the guests it covers), and a
// restart tells neither again.
import { strict as assert } from "node:assert";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { Phase } from "@lull/proto";
import { AgentDatabase, DATABASE_FILE, ScheduleTickStore, startAgent, type RunningAgent } from "@lull/agent";
import { testApi, testConfig, waitForEnd, waitUntil, type TestAgent } from "@lull/agent/testing";
import { createAgentClient, createLogger } from "@lull/shared";
import { startHttpReceiver } from "./receivers.js";

const DAY = 86_400_000;

interface Body {
  severity: string;
  event: string;
  title: string;
  message: string;
  node: string;
  guest: string;
  guests: string[];
  stacks: string[];
  jobId: string;
  code: string;
  timestamp: string;
}

describe("notifications of verification and schedules (real agent, real receiver)", () => {
  const cleanups: Array<() => Promise<void> | void> = [];
  after(async () => {
    for (const c of cleanups.reverse()) await c();
  });

  it("a downtime's missed ticks arrive as one schedule-missed; a failed verification as verification-failed; a restart repeats neither", async () => {
    const ops = await startHttpReceiver([200]);
    const other = await startHttpReceiver([200]);
    cleanups.push(ops.close, other.close);
    const dir = mkdtempSync(join(tmpdir(), "lull-notify-verify-"));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const config = testConfig(dir, {
      config: {
        verify: {
          checks: [
            {
              guest: "demo",
              stack: "files",
              check: { type: "command", argv: ["sh", "-c", 'grep -q paid "$LULL_REPLICA_ROOT/data/orders.csv" || { echo "no paid order in orders.csv" >&2; exit 3; }'] },
            },
          ],
        },
        schedules: { list: [{ id: "nightly", action: "backup", schedule: "daily", timeZone: "UTC", guests: ["demo"] }] },
        notifications: {
          targets: [
            { name: "ops", type: "webhook", url: `${ops.url}/lull`, backoffMs: 100 },
            { name: "other", type: "webhook", url: `${other.url}/lull` },
          ],
          matchers: [
            { targets: ["ops"], guests: ["demo"] },
            { targets: ["other"], guests: ["not-this-guest"] },
          ],
        },
      },
    });
    writeFileSync(join(dir, "app", "orders.csv"), "1,open\n");

    // The schedule last ran three nights ago; the agent has not run since.
    const lastTick = Math.floor(Date.now() / DAY) * DAY - 3 * DAY;
    const seeded = AgentDatabase.open(join(config.dataDir, DATABASE_FILE));
    const ticks = new ScheduleTickStore(seeded, config.node);
    assert.ok(ticks.claim("nightly", lastTick, lastTick));
    assert.ok(ticks.end("nightly", lastTick, "done", "", lastTick + 60_000));
    seeded.close();

    const start = async (): Promise<TestAgent> => {
      const agent: RunningAgent = await startAgent({ config, log: createLogger({ name: "lull-agent", level: (process.env.LULL_TEST_LOG as "info") ?? "silent" }) });
      const client = createAgentClient({ address: `unix://${agent.socketPath}` });
      const t = { api: testApi(client), stop: async () => { client.close(); await agent.stop(); } } as unknown as TestAgent;
      cleanups.push(() => t.stop().catch(() => undefined));
      return t;
    };
    const bodies = () => ops.requests.map((r) => JSON.parse(r.body) as Body);
    let t = await start();

    // 1. The missed nights: one notification, the count and the reason; the guests of the schedule.
    await waitUntil(() => bodies().some((b) => b.event === "schedule-missed"), 10_000, "schedule-missed arrived");
    const missedTicks = (() => {
      const db = AgentDatabase.open(join(config.dataDir, DATABASE_FILE));
      try {
        return new ScheduleTickStore(db, config.node).all("nightly").filter((r) => r.outcome === "missed");
      } finally {
        db.close();
      }
    })();
    assert.equal(missedTicks.length, 3, "three nights, each recorded missed");
    const missed = bodies().filter((b) => b.event === "schedule-missed");
    assert.equal(missed.length, 1, "one notification for the whole batch, not one per tick");
    const m = missed[0]!;
    assert.equal(m.severity, "warning");
    assert.equal(m.title, "Schedule nightly on test-node did not run 3 ticks");
    assert.equal(
      m.message,
      `Schedule nightly (backup of demo): ticks ${new Date(lastTick + DAY).toISOString()} to ${new Date(lastTick + 3 * DAY).toISOString()} did not run: 3 missed (the agent was not running)`,
    );
    assert.deepEqual([m.guest, m.guests, m.jobId, m.node], ["demo", ["demo"], "schedule:nightly", "test-node"]);
    assert.equal(ops.requests[0]?.path, "/lull");

    // 2. A backup whose data fails the check: the point's verification fails.
    const { job } = await t.api.startBackup({ guestId: "demo" });
    assert.equal((await waitForEnd(t, "demo", job!.id, 20_000)).phase, Phase.PHASE_DONE);
    await waitUntil(() => bodies().some((b) => b.event === "verification-failed"), 30_000, "verification-failed arrived");
    const v = bodies().find((b) => b.event === "verification-failed")!;
    const pointId = `b-${job!.id.slice(2)}`;
    assert.equal(v.severity, "error");
    assert.equal(v.code, "LULL_E_VERIFY_FAILED");
    assert.deepEqual([v.guest, v.guests, v.stacks], ["demo", ["demo"], ["files"]]);
    assert.match(v.jobId, /^v-/);
    assert.match(v.message, new RegExp(`^Restore point ${pointId} \\(made [^)]+\\) failed verification ${v.jobId}: stack files failed its command check: .*(exited 3|no paid order)`));
    assert.equal(v.title, "Verification of a restore point of guest demo on test-node failed");

    // 3. A restart: the ticks are recorded and the run is told; nothing arrives again.
    await t.stop();
    t = await start();
    await new Promise((r) => setTimeout(r, 1_500));
    const count = (event: string) => bodies().filter((b) => b.event === event).length;
    // (The backup itself, with no stack registered, is also told crash-consistent, once.)
    assert.deepEqual([count("schedule-missed"), count("verification-failed"), ops.requests.length - count("backup-crash-consistent")], [1, 1, 2], "each once, nothing else");
    assert.equal(other.requests.length, 0, "a matcher for another guest hears none of them");
    await t.stop();
  });
});
