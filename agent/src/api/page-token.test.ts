// Pagination of ListJobs and ListGroups: pages follow each other with nothing missed or repeated,
// the last page has no next token, a token that is not the agent's is refused with the field named,
// and the database is shrunk again after retention. Over gRPC against a real agent on a seeded store.
import { strict as assert } from "node:assert";
import { mkdirSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { agentApiOf } from "@lull/shared";
import { rejection } from "@lull/shared/testing";
import { DATABASE_FILE } from "../agent.js";
import { JobStore } from "../jobs/store.js";
import { reclaimFreePages } from "../ledger/database.js";
import { PruneStore } from "../retention/prune-store.js";
import { DAY_MS } from "../retention/config.js";
import { History } from "../retention/testing/seed-history.js";
import { startTestAgent } from "../testing/agent-harness.js";
import { FakeEngine } from "../testing/fake-engine.js";
import { pagePosition, pageToken } from "./page-token.js";

const dirs: string[] = [];
after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));
const tempDir = (name: string) => {
  const dir = mkdtempSync(join(tmpdir(), name));
  dirs.push(dir);
  return dir;
};

describe("page tokens", () => {
  it("name a position and nothing else; anything else is refused naming the field", () => {
    const p = { createdAt: 1_764_000_000_123, id: "j-01m81fbw8hmbkh4pmh8xrfw2wt" };
    assert.deepEqual(pagePosition(pageToken(p)), p);
    assert.equal(pagePosition(""), undefined);
    for (const bad of ["x", "!!!!", Buffer.from("p1.12.j-a b").toString("base64url"), Buffer.from("p2.1.j-abc").toString("base64url"), "A".repeat(201)]) {
      assert.throws(() => pagePosition(bad), (err: Error & { code?: string }) => err.code === "LULL_E_INVALID_ARGUMENT" && /page_token/.test(err.message), bad);
    }
  });
});

describe("ListJobs and ListGroups pages", () => {
  it("page through every job of a guest and of every guest, newest first, each once", async () => {
    const dir = tempDir("lull-pages-");
    mkdirSync(join(dir, "data"), { recursive: true });
    const seeded = JobStore.open(join(dir, "data", DATABASE_FILE));
    const h = new History(seeded, Date.now());
    const ids: string[] = [];
    for (let i = 0; i < 8; i++) ids.push(h.ended(i % 3 === 0 ? "other" : "demo", 8 - i));
    seeded.close();
    const guests = [
      { id: "demo", driver: "dir", snapshot: "copy", volumes: [{ name: "data", path: join(dir, "app") }] },
      { id: "other", driver: "dir", snapshot: "copy", volumes: [{ name: "data", path: join(dir, "app2") }] },
    ];
    mkdirSync(join(dir, "app2"), { recursive: true });
    const t = await startTestAgent({ dir, guests, engine: new FakeEngine(), config: { retention: { jobs: { maxAgeDays: 36_500, keepLast: 0 } } } });
    const api = agentApiOf(t.client);
    try {
      const all = async (guestId: string, limit: number) => {
        const got: string[] = [];
        let pageToken = "";
        let pages = 0;
        do {
          const res = await api.listJobs({ guestId, activeOnly: false, limit, pageToken });
          assert.ok(res.jobs.length <= limit);
          got.push(...res.jobs.map((j) => j.id));
          pageToken = res.nextPageToken;
          pages += 1;
        } while (pageToken !== "");
        return { got, pages };
      };
      const everyGuest = await all("", 3);
      assert.deepEqual(everyGuest.got, [...ids].reverse(), "every job once, newest first");
      assert.equal(everyGuest.pages, 3);
      const demo = await all("demo", 2);
      assert.deepEqual(demo.got, ids.filter((_, i) => i % 3 !== 0).reverse());
      const exact = await api.listJobs({ guestId: "", activeOnly: false, limit: 8 });
      assert.equal(exact.jobs.length, 8);
      assert.equal(exact.nextPageToken, "", "a page that holds the rest has no next token");
      const bad = await rejection(api.listJobs({ guestId: "", activeOnly: false, limit: 2, pageToken: "nonsense!" }));
      assert.equal(bad.code, "LULL_E_INVALID_ARGUMENT");
      assert.match(bad.message, /page_token/);
      const groups = await api.listGroups({ guestId: "", activeOnly: false, limit: 5 });
      assert.equal(groups.nextPageToken, "");
      assert.equal((await rejection(api.listGroups({ guestId: "", activeOnly: false, limit: 5, pageToken: "zz" }))).code, "LULL_E_INVALID_ARGUMENT");
    } finally {
      await t.stop();
    }
  });

  it("group runs page like jobs", async () => {
    const dir = tempDir("lull-group-pages-");
    mkdirSync(join(dir, "data"), { recursive: true });
    const store = JobStore.open(join(dir, "data", DATABASE_FILE));
    const h = new History(store, Date.now());
    const runs = [3, 2, 1].map((d) => h.groupRun(["a", "b"], d, true).runId);
    store.close();
    const t = await startTestAgent({ dir, engine: new FakeEngine(), config: { retention: { jobs: { maxAgeDays: 36_500, keepLast: 0 } } } });
    const api = agentApiOf(t.client);
    try {
      const first = await api.listGroups({ guestId: "", activeOnly: false, limit: 2 });
      assert.deepEqual(first.groups.map((g) => g.id), [runs[2], runs[1]]);
      const second = await api.listGroups({ guestId: "", activeOnly: false, limit: 2, pageToken: first.nextPageToken });
      assert.deepEqual(second.groups.map((g) => g.id), [runs[0]]);
      assert.equal(second.nextPageToken, "");
    } finally {
      await t.stop();
    }
  });
});

describe("database size after retention", () => {
  it("a prune gives the freed pages back: the file shrinks", () => {
    const dir = tempDir("lull-reclaim-");
    const store = JobStore.open(join(dir, DATABASE_FILE));
    const h = new History(store, Date.now());
    store.transaction(() => {
      for (let i = 0; i < 400; i++) h.ended("demo", 400 - i, { progress: 5 });
    });
    store.connection.pragma("wal_checkpoint(TRUNCATE)");
    const before = statSync(join(dir, DATABASE_FILE)).size;
    const prune = new PruneStore(store);
    prune.deleteUnits(prune.prunableUnits({ maxAgeMs: 30 * DAY_MS, keepLast: 0 }, Date.now()));
    const reclaimed = reclaimFreePages(store.connection);
    const after = statSync(join(dir, DATABASE_FILE)).size;
    assert.ok(reclaimed > 0);
    assert.ok(after < before / 2, `the file shrank (${before} → ${after} bytes)`);
    assert.equal(store.connection.pragma("auto_vacuum", { simple: true }), 2, "a new database is incremental");
    store.close();
  });

  it("a database made before (auto_vacuum NONE) is converted once when it is opened, its rows kept", () => {
    const dir = tempDir("lull-convert-");
    const path = join(dir, DATABASE_FILE);
    const first = JobStore.open(path);
    new History(first, Date.now()).ended("demo", 1);
    first.connection.pragma("auto_vacuum = NONE");
    first.connection.exec("VACUUM");
    assert.equal(first.connection.pragma("auto_vacuum", { simple: true }), 0);
    first.close();
    const again = JobStore.open(path);
    assert.equal(again.connection.pragma("auto_vacuum", { simple: true }), 2);
    assert.equal(again.listJobs({ limit: 10 }).length, 1);
    again.close();
  });
});
