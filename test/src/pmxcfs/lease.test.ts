// The fake pmxcfs's lock semantics and the lease on top of it, on a lock timeout scaled to 1.2 s.
import { strict as assert } from "node:assert";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { acquireLease, checkLeaseTiming, DEFAULT_LEASE_TIMING, lockPath, realClock, scaledTiming, type ClusterFs } from "@lull/agent";
import { FakePmxcfs, initFakePmxcfs, setQuorum } from "./fake-pmxcfs.js";

const TIMEOUT = 1200;
// A renew or a release (rmdir) may take up to 300 ms here (a loaded test machine; scaled, they would
// get 50 ms), a renew still well inside the 600 ms validity.
const timing = { ...scaledTiming(TIMEOUT), renewTimeoutMs: 300, releaseTimeoutMs: 300 };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const code = (c: string) => (err: unknown) => (err as NodeJS.ErrnoException).code === c;

describe("fake pmxcfs: lock semantics", () => {
  let root: string;
  let n1: FakePmxcfs, n2: FakePmxcfs, n3: FakePmxcfs;
  before(async () => {
    root = mkdtempSync(join(tmpdir(), "lull-pmxcfs-"));
    await initFakePmxcfs(root);
    const node = (id: number) => new FakePmxcfs({ root, nodeName: `pve${id}`, nodeId: id, lockTimeoutMs: TIMEOUT });
    [n1, n2, n3] = [node(1), node(2), node(3)];
    for (const n of [n1, n2, n3]) n.startDaemon(10);
  });
  after(() => {
    for (const n of [n1, n2, n3]) n.stopDaemon();
    rmSync(root, { recursive: true, force: true });
  });

  it("mkdir is atomic: of ten concurrent contenders exactly one wins", async () => {
    const nodes = [n1, n2, n3];
    const results = await Promise.allSettled(Array.from({ length: 10 }, (_, i) => nodes[i % 3]!.mkdir("priv/lock/lull-race")));
    assert.equal(results.filter((r) => r.status === "fulfilled").length, 1);
    for (const r of results) if (r.status === "rejected") assert.ok(code("EEXIST")(r.reason));
  });

  it("only the writer node renews; another node's utime(now) is refused", async () => {
    await n2.mkdir("priv/lock/lull-renew");
    await n2.utime("priv/lock/lull-renew", Date.now() / 1000 + 1);
    await assert.rejects(n3.utime("priv/lock/lull-renew", Date.now() / 1000 + 2), code("EACCES"));
    await assert.rejects(n2.utime("priv/lock/lull-renew", Math.floor(Date.now() / 1000) - 60), code("EACCES"), "never backwards");
  });

  it("a renewed lock is never freed; an unrenewed one is freed after the timeout once someone asks (utime 0)", async () => {
    await n3.mkdir("priv/lock/lull-stale");
    await n2.mkdir("priv/lock/lull-live");
    const t0 = Date.now();
    while (Date.now() - t0 < TIMEOUT * 2.5) {
      await n2.utime("priv/lock/lull-live", Date.now() / 1000 + 1);
      await n1.utime("priv/lock/lull-live", 0); // unlock requests for the live one too
      await sleep(40);
    }
    // No one asked for lull-stale: still there after 2.5× the timeout.
    await assert.rejects(n1.mkdir("priv/lock/lull-stale"), code("EEXIST"));
    await assert.rejects(n1.mkdir("priv/lock/lull-live"), code("EEXIST"));
    await n1.utime("priv/lock/lull-stale", 0);
    await sleep(50);
    await n1.mkdir("priv/lock/lull-stale"); // freed by the lowest node, taken by it
  });

  it("without quorum the mount is read-only and acquire says `no quorum!`", async () => {
    await setQuorum(root, 3, false);
    await assert.rejects(n3.mkdir("priv/lock/lull-q"), code("EACCES"));
    const got = await acquireLease(n3, "q", timing, realClock);
    assert.deepEqual(got.held ? "held" : got.reason, "cfs-lock 'lull-q' error: no quorum!");
    await setQuorum(root, 3, true);
  });

  it("a held lock: acquire gives up after its timeout with pve's text", async () => {
    const a = await acquireLease(n1, "held", timing, realClock);
    assert.ok(a.held);
    const b = await acquireLease(n2, "held", timing, realClock);
    assert.equal(b.held ? "held" : b.reason, "cfs-lock 'lull-held' error: got lock request timeout");
    assert.equal(await a.lease.release(), "released");
    const c = await acquireLease(n2, "held", timing, realClock);
    assert.ok(c.held);
    await c.lease.release();
  });

  it("the holder keeps its lease past the lock timeout by renewing; loses it when quorum goes", async () => {
    const a = await acquireLease(n2, "keep", timing, realClock);
    assert.ok(a.held);
    await sleep(TIMEOUT * 2);
    assert.ok(a.lease.valid(), `renewed lease still valid (${a.lease.lostReason})`);
    const other = await acquireLease(n1, "keep", timing, realClock);
    assert.equal(other.held, false);
    await setQuorum(root, 2, false);
    await sleep(timing.renewEveryMs * 2 + timing.renewTimeoutMs);
    assert.equal(a.lease.signal.aborted, true);
    assert.match(a.lease.lostReason, /renew failed: .*no quorum/);
    assert.equal(a.lease.valid(), false);
    assert.equal(await a.lease.release(), "lost", "a lost lease is never rmdir'd");
    await setQuorum(root, 2, true);
  });

  it("a holder that stops renewing (paused) finds its lease invalid before acting, and the lock is freed for others", async () => {
    const a = await acquireLease(n3, "pause", timing, realClock);
    assert.ok(a.held);
    a.lease.abandon(); // stands for a paused process: no more renewals
    const t0 = Date.now();
    let got;
    do got = await acquireLease(n1, "pause", timing, realClock);
    while (!got.held && Date.now() - t0 < TIMEOUT * 4);
    assert.ok(got.held, "freed after the timeout");
    assert.ok(Date.now() - t0 >= TIMEOUT * 0.9, `not before the timeout (${Date.now() - t0} ms)`);
    assert.equal(a.lease.valid(), false);
    await got.lease.release();
  });

  it("release never blocks longer than its timeout (a hung rmdir is abandoned)", async () => {
    const hung: ClusterFs = Object.assign(Object.create(n1), { rmdir: () => new Promise<void>(() => {}) });
    const a = await acquireLease(hung, "hang", timing, realClock);
    assert.ok(a.held);
    const t0 = Date.now();
    assert.equal(await a.lease.release(), "abandoned");
    assert.ok(Date.now() - t0 < timing.releaseTimeoutMs + 100);
    await n1.rmdir(lockPath("hang"));
  });
});

describe("lease timing windows are validated together", () => {
  it("the defaults pass", () => checkLeaseTiming(DEFAULT_LEASE_TIMING));
  it("a renew interval over 10 s and a chunk longer than the stop bound are named", () => {
    assert.throws(
      () => checkLeaseTiming({ ...DEFAULT_LEASE_TIMING, renewEveryMs: 30_000, chunkMs: 70_000 }, "schedules.lease"),
      (err: Error) => /schedules\.lease\.renewEveryMs \(30000\) must be at most 10 s/.test(err.message) && /schedules\.lease\.chunkMs \(70000\) must be shorter than schedules\.lease\.stopWithinMs/.test(err.message),
    );
  });
});
