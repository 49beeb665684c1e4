// Stale verification: the verdict table (pure), and the watch over a real database with a fake
// clock — each stale episode told once (not every hour, not again after a restart), told again
// after the stack was fresh and went stale again.
import { strict as assert } from "node:assert";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { Consistency, SnapshotMode } from "@lull/proto";
import { silentLogger, type Clock } from "@lull/shared";
import type { RestorePoint } from "../backups/restore-point.js";
import { BackupStore } from "../backups/store.js";
import { loadAgentConfig } from "../config.js";
import { AgentDatabase } from "../ledger/agent-database.js";
import { VerifyStore } from "../verify/store.js";
import { FactFeed, type Fact } from "./facts.js";
import { StaleToldStore } from "./stale-told-store.js";
import { StaleVerificationWatch, staleVerdict, type StaleInput, type StaleVerdict } from "./stale-watch.js";

const DAY = 86_400_000;
const T = Date.parse("2026-12-01T00:00:00Z");
const dir = mkdtempSync(join(tmpdir(), "lull-stale-"));
after(() => rmSync(dir, { recursive: true, force: true }));

describe("staleVerdict", () => {
  const base: StaleInput = { marker: undefined, firstPointAt: undefined, toldEpisode: undefined, now: T, staleAfterMs: 7 * DAY };
  const cases: Array<[string, Partial<StaleInput>, StaleVerdict]> = [
    ["no point yet: nothing to verify, fresh", {}, { state: "fresh" }],
    ["never verified, first point 6 days old: fresh", { firstPointAt: T - 6 * DAY }, { state: "fresh" }],
    ["never verified, first point exactly 7 days old: fresh (stale is older than the age)", { firstPointAt: T - 7 * DAY }, { state: "fresh" }],
    ["never verified, first point 8 days old: stale, episode 0, tell", { firstPointAt: T - 8 * DAY }, { state: "stale", since: T - 8 * DAY, episode: 0, tell: true }],
    ["never verified, told already: stale, no tell", { firstPointAt: T - 8 * DAY, toldEpisode: 0 }, { state: "stale", since: T - 8 * DAY, episode: 0, tell: false }],
    ["verified 2 days ago (first point long ago): fresh", { marker: { pointId: "b-2", at: T - 2 * DAY }, firstPointAt: T - 90 * DAY }, { state: "fresh" }],
    ["verified 9 days ago: stale since the pass, tell", { marker: { pointId: "b-2", at: T - 9 * DAY }, firstPointAt: T - 90 * DAY }, { state: "stale", since: T - 9 * DAY, episode: T - 9 * DAY, tell: true }],
    ["verified 9 days ago, that episode told: no tell", { marker: { pointId: "b-2", at: T - 9 * DAY }, toldEpisode: T - 9 * DAY }, { state: "stale", since: T - 9 * DAY, episode: T - 9 * DAY, tell: false }],
    ["stale again after a newer pass than the one told: a new episode, tell", { marker: { pointId: "b-3", at: T - 8 * DAY }, toldEpisode: T - 20 * DAY }, { state: "stale", since: T - 8 * DAY, episode: T - 8 * DAY, tell: true }],
  ];
  for (const [what, patch, expected] of cases) it(what, () => assert.deepEqual(staleVerdict({ ...base, ...patch }), expected));
});

describe("StaleVerificationWatch over the database", () => {
  const point = (id: string, createdAt: number): RestorePoint => ({
    id, jobId: `j-${id}`, guestId: "app1", groupRunId: "", engine: "native", mode: SnapshotMode.SNAPSHOT_MODE_COPY, consistency: Consistency.CONSISTENCY_APP,
    snapshotAt: undefined, createdAt: new Date(createdAt), locationKind: "native-archive", location: `/a/${id}.tar.zst`, sizeBytes: 1, stacks: [],
    protected: false, notes: "", origin: "lull", sha256: "", manifest: undefined, integrity: undefined,
  });

  it("tells a stale episode once, not every hour nor after a restart; again after it was fresh and went stale again", () => {
    const path = join(dir, "agent.db");
    let db = AgentDatabase.open(path);
    const clock: Clock & { at: number } = { at: T, now: () => clock.at, sleep: () => Promise.resolve() };
    const facts: Fact[] = [];
    const watchOver = (database: AgentDatabase) => {
      const feed = new FactFeed(silentLogger());
      feed.subscribe((f) => facts.push(f));
      const checks = [{ guest: "app1", stack: "db" }, { guest: "app1", stack: "files" }, { guest: "app1", stack: "db" }, { guest: "empty", stack: "x" }];
      return new StaleVerificationWatch({ checks, staleAfterDays: 7, verify: new VerifyStore(database), backups: new BackupStore(database), told: new StaleToldStore(database), feed, clock, log: silentLogger() });
    };
    new BackupStore(db).insert(point("b-1", T));
    const verify = () => new VerifyStore(db);
    verify().mark("app1", "files", "b-1", T + DAY);
    let watch = watchOver(db);

    clock.at = T + 7 * DAY;
    assert.deepEqual(watch.check(), [], "db: first point exactly 7 days old; files: verified 6 days ago");
    clock.at = T + 7 * DAY + 1;
    assert.deepEqual(watch.check(), ["app1/db"], "db never verified, its guest's first point older than 7 days; a guest without points is not stale");
    // Two days of hourly looks: files' pass (T+1d) gets older than 7 days on the way.
    for (let h = 1; h <= 48; h++) {
      clock.at += 3_600_000;
      watch.check();
    }
    const told = () => facts.map((f) => (f.kind === "verification-stale" ? [f.stack, f.lastVerified?.pointId ?? "never", f.since] : f.kind));
    assert.deepEqual(told(), [["db", "never", T], ["files", "b-1", T + DAY]], "each told once in 48 hourly looks");
    db.close();
    db = AgentDatabase.open(path);
    watch = watchOver(db);
    for (let restart = 0; restart < 5; restart++) assert.deepEqual(watch.check(), [], "a restart storm tells nothing again");

    // db passes now (fresh), then goes 8 days without a pass: a new episode, told again.
    new VerifyStore(db).mark("app1", "db", "b-1", clock.at);
    assert.deepEqual(watch.check(), []);
    clock.at += 8 * DAY;
    assert.deepEqual(watch.check(), ["app1/db"], "db: a new episode; files: still the episode told");
    assert.equal(facts.length, 3);
    const last = facts.at(-1);
    assert.ok(last?.kind === "verification-stale" && last.lastVerified?.pointId === "b-1" && last.since === clock.at - 8 * DAY);
    db.close();
  });
});

describe("verify.staleAfterDays", () => {
  const load = (verify: unknown) => {
    const file = join(dir, "agent.json");
    writeFileSync(file, JSON.stringify({ dataDir: join(dir, "d"), archiveDir: join(dir, "a"), stagingDir: join(dir, "s"), guests: [], verify }));
    return loadAgentConfig({ config: file });
  };
  it("defaults to 7 days, the threshold of LullVerificationStale", () => assert.equal(load({}).verify.staleAfterDays, 7));
  it("a bad value names the key and the fix", () => {
    assert.throws(() => load({ staleAfterDays: 0 }), /verify\.staleAfterDays: must be at least 1 day \(default 7/);
    assert.throws(() => load({ staleAfterDays: 1.5 }), /verify\.staleAfterDays: must be a whole number of days/);
    assert.throws(() => load({ staleAfterDays: "7" }), /verify\.staleAfterDays: must be a number of days/);
  });
});
