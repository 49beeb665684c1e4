// The status page in a real headless Chromium (Debian's `chromium`, driven by playwright-core):
// an operator signs in with a token, a running backup's phases appear live over server-sent
// events without a reload, each stack has exactly one down interval whose width in the SVG's
// time scale is the downtime the API reports, and a screenshot lands in the test's output dir
// (LULL_TEST_OUTPUT, default test/output/status-page/).
import { strict as assert } from "node:assert";
import { existsSync, mkdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { chromium, type Browser } from "playwright-core";
import { Phase } from "@lull/proto";
import { FakeEngine, startTestAgent, waitForEnd, waitForJob, waitUntil, type TestAgent } from "@lull/agent/testing";
import { REPO_ROOT } from "../support/paths.js";
import { requireAvailable } from "../support/require.js";

const CHROMIUM = "/usr/bin/chromium";
const OUTPUT = process.env["LULL_TEST_OUTPUT"] ? join(process.env["LULL_TEST_OUTPUT"], "status-page") : join(REPO_ROOT, "test/output/status-page");

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("status page", () => {
  const cleanups: Array<() => Promise<void>> = [];
  after(async () => {
    for (const c of cleanups.reverse()) await c();
  });

  async function agentWithPage(engine: FakeEngine): Promise<{ t: TestAgent; base: string; operator: string; guest: string }> {
    const t = await startTestAgent({ engine, config: { metrics: { address: "127.0.0.1:0" } } });
    cleanups.push(() => t.stop());
    const base = `http://${t.agent.metricsAddress}`;
    const operator = t.agent.tokens.create({ kind: "operator", note: "status test" }, Date.now()).token;
    const guest = t.agent.tokens.create({ kind: "guest", guestId: "demo" }, Date.now()).token;
    return { t, base, operator, guest };
  }

  it("is for operators only and read-only; /metrics stays beside it", async () => {
    const { base, operator, guest } = await agentWithPage(new FakeEngine());
    const none = await fetch(`${base}/status`);
    assert.equal(none.status, 401);
    assert.match(await none.text(), /operator token/);
    const asGuest = await fetch(`${base}/status`, { headers: { authorization: `Bearer ${guest}` } });
    assert.equal(asGuest.status, 403);
    assert.match(await asGuest.text(), /for operators; token \w+ is scoped to guest demo/);
    const bad = await fetch(`${base}/status/events`, { headers: { authorization: "Bearer lull_aaaaaaaaaaaa_nope" } });
    assert.equal(bad.status, 401);
    const ok = await fetch(`${base}/status`, { headers: { authorization: `Bearer ${operator}` } });
    assert.equal(ok.status, 200);
    assert.match(ok.headers.get("content-security-policy") ?? "", /default-src 'none'/);
    const html = await ok.text();
    assert.match(html, /no job is running/);
    assert.ok(!html.includes(operator) && !html.includes(guest), "the page never shows a token");
    const post = await fetch(`${base}/status`, { method: "POST", headers: { authorization: `Bearer ${operator}` } });
    assert.equal(post.status, 405);
    const guestLogin = await fetch(`${base}/status/login`, { method: "POST", body: new URLSearchParams({ token: guest }), redirect: "manual" });
    assert.equal(guestLogin.status, 403);
    assert.equal(guestLogin.headers.get("set-cookie"), null);
    const mangled = await fetch(`${base}/status`, { headers: { cookie: "lull_status=%E0%A4%A" } });
    assert.equal(mangled.status, 401, "a mangled cookie is refused, and the agent stays up");
    const viaCookie = await fetch(`${base}/status`, { headers: { cookie: `other=1; lull_status=${encodeURIComponent(operator)}` } });
    assert.equal(viaCookie.status, 200);
    const tooBig = await fetch(`${base}/status/login`, { method: "POST", body: "token=" + "x".repeat(5000) });
    assert.equal(tooBig.status, 413);
    assert.equal((await fetch(`${base}/status/nothing`, { headers: { authorization: `Bearer ${operator}` } })).status, 404);
    assert.equal((await fetch(`${base}/metrics`)).status, 200);
  });

  it("in Chromium: live phases over SSE, one down interval per stack as long as its reported downtime, a screenshot", async () => {
    requireAvailable("Debian's chromium (apt-get install chromium)", existsSync(CHROMIUM) ? false : `${CHROMIUM} is missing`);
    const engine = new FakeEngine({ holdArchive: true, progressSteps: 4 });
    const { t, base, operator } = await agentWithPage(engine);
    const browser: Browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--no-first-run"],
    });
    cleanups.push(() => browser.close());
    const page = await browser.newPage({ viewport: { width: 1000, height: 900 } });
    const problems: string[] = [];
    page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
    page.on("console", (m) => {
      if (m.type() === "error") problems.push(`console: ${m.text()}`);
    });
    page.on("request", (r) => {
      if (!r.url().startsWith(base)) problems.push(`request outside the agent: ${r.url()}`);
    });

    // Sign in through the form: the token goes into an HttpOnly cookie for /status.
    const first = await page.goto(`${base}/status`);
    assert.equal(first?.status(), 401);
    await page.fill("input[name=token]", operator);
    await Promise.all([page.waitForURL(`${base}/status`), page.click("button[type=submit]")]);
    await page.waitForSelector("#live.on");
    // The sign-in page itself was a 401; nothing else went wrong so far.
    assert.deepEqual(problems.splice(0), ["console: Failed to load resource: the server responded with a status of 401 (Unauthorized)"]);
    await page.evaluate("window.notReloaded = true");

    await t.api.registerStack({ guestId: "demo", stack: "app", controllerId: "ctl-app" });
    await t.api.registerStack({ guestId: "demo", stack: "db", controllerId: "ctl-db" });
    const { job } = await t.api.startBackup({ guestId: "demo", quiesceTimeoutMs: 10_000 });
    const id = job!.id;
    await page.waitForSelector(`#running-jobs #job-${id}[data-phase="quiescing"]`, { timeout: 10_000 });

    const stoppedApp = new Date();
    await t.api.acknowledgeQuiesce({ guestId: "demo", jobId: id, stack: "app", stoppedAt: stoppedApp });
    await sleep(150);
    const stoppedDb = new Date();
    await t.api.acknowledgeQuiesce({ guestId: "demo", jobId: id, stack: "db", stoppedAt: stoppedDb });
    await waitForJob(t, "demo", id, (j) => j.phase === Phase.PHASE_ARCHIVING, 10_000);
    await page.waitForSelector(`#running-jobs #job-${id}[data-phase="archiving"] line.snapshot`, { state: "attached", timeout: 10_000 });
    // While archiving, app is back (resumed early) and db is still down: an open interval.
    await sleep(200);
    const resumedApp = new Date();
    await t.api.reportResumed({ guestId: "demo", jobId: id, stack: "app", downtimeMs: resumedApp.getTime() - stoppedApp.getTime(), resumedAt: resumedApp, early: true });
    await page.waitForSelector(`#job-${id} rect.down.open[data-stack="db"]`, { timeout: 10_000 });
    await sleep(400);
    const resumedDb = new Date();
    await t.api.reportResumed({ guestId: "demo", jobId: id, stack: "db", downtimeMs: resumedDb.getTime() - stoppedDb.getTime(), resumedAt: resumedDb, early: true });
    engine.release();
    const done = await waitForEnd(t, "demo", id, 10_000);
    assert.equal(done.phase, Phase.PHASE_DONE, done.errorMessage);
    await page.waitForSelector(`#recent-jobs #job-${id}[data-phase="done"]`, { timeout: 10_000 });
    assert.equal(await page.evaluate("window.notReloaded"), true, "the updates came over SSE, not by a reload");
    assert.equal(await page.locator("#running-jobs .job").count(), 0);

    // The timeline: phases in order, one down rect per stack, widths = the API's downtime.
    // Read in the page (a string: the test workspace compiles without the DOM's types).
    const drawn = (await page.evaluate(`(() => {
      const svg = document.querySelector("#job-${id} svg.timeline");
      const downs = [...svg.querySelectorAll("rect.down")].map((r) => ({ stack: r.dataset.stack, width: r.getBBox().width, open: r.classList.contains("open") }));
      const phases = [...svg.querySelectorAll("rect.phase")].map((r) => r.dataset.phase);
      const snap = svg.querySelector("line.snapshot");
      return { pxPerMs: Number(svg.dataset.pxPerMs), t0: Number(svg.dataset.t0), plotX: Number(svg.dataset.plotX), downs, phases, snapshotX: snap ? snap.x1.baseVal.value : undefined };
    })()`)) as { pxPerMs: number; t0: number; plotX: number; downs: Array<{ stack: string; width: number; open: boolean }>; phases: string[]; snapshotX?: number };
    assert.deepEqual(drawn.phases, ["queued", "quiescing", "snapshotting", "snapshotted", "archiving"]);
    assert.ok(drawn.pxPerMs > 0, `a time scale on the svg: ${drawn.pxPerMs}`);
    const reported = await t.api.getJob({ guestId: "demo", jobId: id });
    assert.deepEqual(drawn.downs.map((d) => d.stack).sort(), ["app", "db"], "exactly one down interval per stack");
    for (const s of reported.stacks) {
      const rect = drawn.downs.find((d) => d.stack === s.stack)!;
      assert.ok(s.downtimeMs > 0);
      assert.equal(rect.open, false);
      const widthMs = rect.width / drawn.pxPerMs;
      assert.ok(Math.abs(widthMs - s.downtimeMs) <= Math.max(1, 0.5 / drawn.pxPerMs), `${s.stack}: drawn ${widthMs} ms, reported ${s.downtimeMs} ms`);
    }
    const app = reported.stacks.find((s) => s.stack === "app")!;
    const db = reported.stacks.find((s) => s.stack === "db")!;
    assert.ok(db.downtimeMs > app.downtimeMs + 100, "db was down longer, and its rect is wider");
    const snapMs = (drawn.snapshotX as number - drawn.plotX) / drawn.pxPerMs + drawn.t0;
    assert.ok(Math.abs(snapMs - reported.snapshotAt!.getTime()) <= Math.max(1, 0.5 / drawn.pxPerMs), "the snapshot marker sits at snapshot_at");

    // The downtime charts updated live too: one bar for each stack, the reported downtime.
    const bars = await page.evaluate(`[...document.querySelectorAll("#charts svg.downtime-chart")].map((svg) => ({
      stack: svg.dataset.stack, bars: [...svg.querySelectorAll("rect.bar")].map((b) => Number(b.dataset.downtimeMs)) }))`);
    assert.deepEqual(bars, [
      { stack: "app", bars: [app.downtimeMs] },
      { stack: "db", bars: [db.downtimeMs] },
    ]);

    // A second, quick backup so the charts have a history, then the picture.
    const second = await t.api.startBackup({ guestId: "demo", quiesceTimeoutMs: 10_000, idempotencyKey: "second" });
    const id2 = second.job!.id;
    await waitForJob(t, "demo", id2, (j) => j.phase === Phase.PHASE_QUIESCING);
    const s2 = new Date();
    await t.api.acknowledgeQuiesce({ guestId: "demo", jobId: id2, stack: "app", stoppedAt: s2 });
    await t.api.acknowledgeQuiesce({ guestId: "demo", jobId: id2, stack: "db", stoppedAt: s2 });
    await waitForJob(t, "demo", id2, (j) => j.phase !== Phase.PHASE_QUIESCING && j.phase !== Phase.PHASE_SNAPSHOTTING, 10_000);
    const r2 = new Date();
    await t.api.reportResumed({ guestId: "demo", jobId: id2, stack: "app", downtimeMs: r2.getTime() - s2.getTime(), resumedAt: r2, early: true });
    await t.api.reportResumed({ guestId: "demo", jobId: id2, stack: "db", downtimeMs: r2.getTime() - s2.getTime(), resumedAt: r2, early: true });
    assert.equal((await waitForEnd(t, "demo", id2, 10_000)).phase, Phase.PHASE_DONE);
    const dbBars = page.locator('#charts svg.downtime-chart[data-stack="db"] rect.bar');
    await waitUntil(async () => (await dbBars.count()) === 2, 10_000, "the db chart shows both backups");

    mkdirSync(OUTPUT, { recursive: true });
    const shot = join(OUTPUT, "status-page.png");
    await page.screenshot({ path: shot, fullPage: true });
    assert.ok(statSync(shot).size > 10_000, `a real screenshot at ${shot}`);
    assert.deepEqual(problems, []);
  });
});
