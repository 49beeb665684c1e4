// The dispatcher's routing and delivery rules on their own: matchers by severity, guest and stack,
// templates, and which failures are retried (against a real local HTTP server).
import { strict as assert } from "node:assert";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { describe, it } from "node:test";
import { createLogger, systemClock } from "@lull/shared";
import { notificationsConfigSchema } from "./config.js";
import { NotificationDispatcher, routeOf } from "./dispatcher.js";
import { renderTemplate, type Notification } from "./notification.js";

const base: Notification = {
  severity: "error",
  event: "backup-failed",
  title: 'Backup of "101" failed',
  message: "line1\nline2",
  node: "pve1",
  guest: "101",
  guests: ["101"],
  stacks: ["shop", "db"],
  jobId: "j-1",
  code: "LULL_E_SNAPSHOT_FAILED",
  timestamp: "2026-01-01T00:00:00.000Z",
};
const hook = (name: string) => ({ name, type: "webhook", url: "http://127.0.0.1:9/x" });

describe("notification routing", () => {
  const config = notificationsConfigSchema.parse({
    targets: [hook("all"), hook("errors"), hook("g101"), hook("shop"), hook("web"), hook("both")],
    matchers: [
      { targets: ["all"] },
      { targets: ["errors"], severity: ["error"] },
      { targets: ["g101"], guests: ["101"] },
      { targets: ["shop"], stacks: ["shop"] },
      { targets: ["web"], stacks: ["web"] },
      { targets: ["both"], severity: ["warning"], guests: ["101"] },
      { targets: ["all", "errors"], severity: ["error"] },
    ],
  });

  const cases: Array<[string, Partial<Notification>, string[]]> = [
    ["an error of guest 101 with stacks shop and db", {}, ["all", "errors", "g101", "shop"]],
    ["a warning of guest 101", { severity: "warning" }, ["all", "g101", "shop", "both"]],
    ["an error of guest 102 without stacks", { guest: "102", guests: ["102"], stacks: [] }, ["all", "errors"]],
    ["an info of guest 102 with stack web", { severity: "info", guest: "102", guests: ["102"], stacks: ["web"] }, ["all", "web"]],
    // A schedule of several guests: a matcher by guest matches when it names any of them.
    ["a warning of a schedule covering 100 and 101, no stacks", { severity: "warning", guest: "100,101", guests: ["100", "101"], stacks: [] }, ["all", "g101", "both"]],
    ["an error of a schedule covering 102 and 103", { guest: "102,103", guests: ["102", "103"], stacks: [] }, ["all", "errors"]],
  ];
  for (const [what, patch, expected] of cases) {
    it(`${what} → ${expected.join(", ")} (each once, in config order)`, () => {
      assert.deepEqual(routeOf(config, { ...base, ...patch }), expected);
    });
  }

  it("templates: raw text, JSON values (escaped), secrets", () => {
    const out = renderTemplate('{"t": {{ json title }}, "m": {{json message}}, "s": {{ json stacks }}, "g": "{{ guest }}", "k": "{{ secrets.key }}"}', base, { key: "K" });
    assert.deepEqual(JSON.parse(out), { t: 'Backup of "101" failed', m: "line1\nline2", s: ["shop", "db"], g: "101", k: "K" });
  });

  it("config errors name the key and the fix", () => {
    const r = notificationsConfigSchema.safeParse({ targets: [hook("a"), hook("a")], matchers: [{ targets: ["b"] }] });
    assert.equal(r.success, false);
    const text = JSON.stringify(r.error?.issues);
    assert.match(text, /duplicate target a/);
    assert.match(text, /no target named b \(add it to notifications.targets\)/);
    assert.equal(notificationsConfigSchema.safeParse({ targets: [{ ...hook("a"), url: "ftp://x" }] }).success, false);
  });
});

describe("webhook delivery", () => {
  async function server(status: number): Promise<{ url: string; hits: () => number; close: () => void }> {
    let hits = 0;
    const s = createServer((req, res) => {
      hits++;
      req.resume();
      req.on("end", () => res.writeHead(status).end());
    });
    await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
    return { url: `http://127.0.0.1:${(s.address() as AddressInfo).port}/h`, hits: () => hits, close: () => s.close() };
  }

  const dispatcher = (url: string, retries: number) =>
    new NotificationDispatcher({
      config: notificationsConfigSchema.parse({ targets: [{ name: "h", type: "webhook", url, retries, backoffMs: 10 }], matchers: [{ targets: ["h"] }] }),
      node: "pve1",
      log: createLogger({ name: "t", level: "silent" }),
      clock: systemClock,
    });

  it("a 400 is not retried: one attempt, reported failed", async () => {
    const s = await server(400);
    const d = dispatcher(s.url, 3);
    const [outcome] = await d.dispatch(base);
    assert.deepEqual(outcome, { target: "h", delivered: false, attempts: 1, error: `POST ${new URL(s.url).origin}: HTTP 400` });
    assert.equal(s.hits(), 1);
    await d.close(100);
    s.close();
  });

  it("a 503 is retried until the retries run out; an unreachable receiver too", async () => {
    const s = await server(503);
    const d = dispatcher(s.url, 2);
    const [outcome] = await d.dispatch(base);
    assert.equal(outcome?.delivered, false);
    assert.equal(outcome?.attempts, 3);
    assert.equal(s.hits(), 3);
    s.close();
    const free = createServer();
    await new Promise<void>((r) => free.listen(0, "127.0.0.1", r));
    const port = (free.address() as AddressInfo).port;
    await new Promise((r) => free.close(r));
    const gone = dispatcher(`http://127.0.0.1:${port}/nothing-listens`, 1);
    const [refused] = await gone.dispatch(base);
    assert.equal(refused?.attempts, 2);
    assert.match(refused?.error ?? "", /ECONNREFUSED/);
    await d.close(100);
    await gone.close(100);
    const blocked = dispatcher("http://127.0.0.1:6000/x", 3);
    const [bad] = await blocked.dispatch(base);
    assert.equal(bad?.attempts, 1, "a blocked port is not retried");
    assert.match(bad?.error ?? "", /blocked port\); use another port/);
    await blocked.close(100);
  });
});
