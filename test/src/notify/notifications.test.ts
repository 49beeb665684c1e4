// Notifications from a real in-process agent to real local receivers: a webhook that fails twice
// then accepts (retries with backoff, templated body, secret header), Gotify, an SMTP sink, and
// matchers by severity, guest and stack deciding who hears what.
import { strict as assert } from "node:assert";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { Phase, QuiescePolicy } from "@lull/proto";
import { FakeEngine, startTestAgent, waitForEnd, waitForJob, waitUntil, type TestAgent } from "@lull/agent/testing";
import { startHttpReceiver, startSmtpSink, type HttpReceiver, type SmtpSink } from "./receivers.js";

describe("notifications", () => {
  const cleanups: Array<() => Promise<void>> = [];
  after(async () => {
    for (const c of cleanups.reverse()) await c();
  });

  async function setup(): Promise<{ t: TestAgent; hook: HttpReceiver; gotify: HttpReceiver; other: HttpReceiver; smtp: SmtpSink }> {
    const hook = await startHttpReceiver([500, 503, 200]);
    const gotify = await startHttpReceiver([200]);
    const other = await startHttpReceiver([200]);
    const smtp = await startSmtpSink();
    cleanups.push(hook.close, gotify.close, other.close, smtp.close);
    const secrets = mkdtempSync(join(tmpdir(), "lull-notify-secrets-"));
    writeFileSync(join(secrets, "hook.key"), "s3cret-hook-key\n", { mode: 0o600 });
    writeFileSync(join(secrets, "gotify.token"), "AbCgotifyToken", { mode: 0o600 });
    const t = await startTestAgent({
      engine: new FakeEngine(),
      config: {
        notifications: {
          targets: [
            {
              name: "ops-hook",
              type: "webhook",
              url: `${hook.url}/hooks/lull`,
              headers: { Authorization: "Bearer {{ secrets.key }}", "X-Lull-Severity": "{{ severity }}" },
              secrets: { key: join(secrets, "hook.key") },
              body: '{"text": {{ json title }}, "detail": {{ json message }}, "guest": "{{ guest }}", "code": "{{ code }}"}',
              retries: 3,
              backoffMs: 100,
            },
            { name: "phone", type: "gotify", url: `${gotify.url}/`, tokenFile: join(secrets, "gotify.token") },
            { name: "mail", type: "smtp", host: "127.0.0.1", port: smtp.port, mode: "none", from: "lull@pve1.example", to: ["ops@example.com"] },
            { name: "other-team", type: "webhook", url: `${other.url}/x` },
          ],
          matchers: [
            { targets: ["ops-hook", "mail"], severity: ["error"] },
            { targets: ["phone"], severity: ["warning"], stacks: ["app"] },
            { targets: ["other-team"], guests: ["not-this-guest"] },
          ],
        },
      },
    });
    cleanups.push(() => t.stop());
    return { t, hook, gotify, other, smtp };
  }

  it("a failure reaches the webhook after two failed attempts, and the SMTP sink; a crash-consistent backup reaches Gotify", async () => {
    const { t, hook, gotify, other, smtp } = await setup();
    await t.api.registerStack({ guestId: "demo", stack: "app", controllerId: "ctl-app" });

    // 1. A failure (error): the stack refuses under the fail policy.
    const failing = await t.api.startBackup({ guestId: "demo", policy: QuiescePolicy.QUIESCE_POLICY_FAIL, quiesceTimeoutMs: 10_000, idempotencyKey: "f" });
    await waitForJob(t, "demo", failing.job!.id, (j) => j.phase === Phase.PHASE_QUIESCING);
    await t.api.refuseQuiesce({ guestId: "demo", jobId: failing.job!.id, stack: "app", reason: "migration running" });
    const failed = await waitForEnd(t, "demo", failing.job!.id);
    assert.equal(failed.phase, Phase.PHASE_FAILED);

    await waitUntil(() => hook.requests.some((r) => r.status === 200), 10_000, "the webhook accepted");
    assert.deepEqual(hook.requests.map((r) => r.status), [500, 503, 200], "two failures, then the accepted attempt, then nothing more");
    const gaps = hook.requests.slice(1).map((r, i) => r.at - (hook.requests[i] as { at: number }).at);
    assert.ok((gaps[0] as number) >= 90 && (gaps[1] as number) >= 190, `backoff doubles (100 ms, 200 ms): gaps ${gaps.join(", ")} ms`);
    for (const r of hook.requests) {
      assert.equal(r.method, "POST");
      assert.equal(r.path, "/hooks/lull");
      assert.equal(r.headers.authorization, "Bearer s3cret-hook-key", "the secret header, read from its file");
      assert.equal(r.headers["x-lull-severity"], "error");
    }
    const body = JSON.parse((hook.requests[2] as { body: string }).body) as Record<string, string>;
    assert.equal(body.text, "Backup of guest demo on test-node failed");
    assert.match(body.detail as string, new RegExp(`^Job ${failed.id} failed in quiescing: LULL_E_QUIESCE_REFUSED: .*migration running`));
    assert.equal(body.guest, "demo");
    assert.equal(body.code, "LULL_E_QUIESCE_REFUSED");

    await waitUntil(() => smtp.mails.length === 1, 10_000, "the mail arrived");
    const mail = smtp.mails[0]!;
    assert.equal(mail.from, "lull@pve1.example");
    assert.deepEqual(mail.to, ["ops@example.com"]);
    assert.match(mail.raw, /^Subject: \[lull error\] Backup of guest demo on test-node failed/m);
    assert.match(mail.raw, /LULL_E_QUIESCE_REFUSED/);
    assert.match(mail.raw, /^X-Lull-Severity: error/m);
    assert.equal(gotify.requests.length, 0, "Gotify hears warnings only");

    // 2. A crash-consistent downgrade (warning): the refusal under the crash-consistent policy.
    const crash = await t.api.startBackup({ guestId: "demo", policy: QuiescePolicy.QUIESCE_POLICY_CRASH_CONSISTENT, quiesceTimeoutMs: 10_000, idempotencyKey: "c" });
    await waitForJob(t, "demo", crash.job!.id, (j) => j.phase === Phase.PHASE_QUIESCING);
    await t.api.refuseQuiesce({ guestId: "demo", jobId: crash.job!.id, stack: "app", reason: "busy" });
    const done = await waitForEnd(t, "demo", crash.job!.id);
    assert.equal(done.phase, Phase.PHASE_DONE);

    await waitUntil(() => gotify.requests.length === 1, 10_000, "Gotify got the warning");
    const g = gotify.requests[0]!;
    assert.equal(g.path, "/message");
    assert.equal(g.headers["x-gotify-key"], "AbCgotifyToken");
    const msg = JSON.parse(g.body) as { title: string; message: string; priority: number; extras: Record<string, { severity: string; stacks: string[] }> };
    assert.equal(msg.title, "Backup of guest demo on test-node is only crash-consistent");
    assert.match(msg.message, /without every stack quiesced: app \(busy\)/);
    assert.equal(msg.priority, 5);
    assert.equal(msg.extras["lull::notification"]?.severity, "warning");
    assert.deepEqual(msg.extras["lull::notification"]?.stacks, ["app"]);

    // The error-only targets did not hear the warning; the other guest's target heard nothing.
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(hook.requests.length, 3);
    assert.equal(smtp.mails.length, 1);
    assert.equal(other.requests.length, 0, "a matcher for another guest never matches");
    assert.ok(t.logs.some((l) => l.msg === "notification attempt failed" && l.target === "ops-hook"), "each failed attempt is logged");
    assert.ok(!JSON.stringify(t.logs).includes("s3cret-hook-key"), "the secret never reaches the log");
  });

  it("a bad target fails the start with the key and the fix: unreadable secret, unknown template name, unknown matcher target", async () => {
    const dir = mkdtempSync(join(tmpdir(), "lull-notify-bad-"));
    const base = { name: "h", type: "webhook", url: "http://127.0.0.1:9/x" };
    await assert.rejects(
      startTestAgent({ engine: new FakeEngine(), dir, config: { notifications: { targets: [{ ...base, secrets: { k: "/nonexistent/key" } }] } } }),
      /notifications\.targets\.0\.secrets\.k: cannot read the secret file \/nonexistent\/key \(ENOENT\)/,
    );
    await assert.rejects(
      startTestAgent({ engine: new FakeEngine(), dir, config: { notifications: { targets: [{ ...base, body: "{{ tilte }}" }] } } }),
      /notifications\.targets\.0\.body: unknown template name \{\{ tilte \}\}/,
    );
    await assert.rejects(
      startTestAgent({ engine: new FakeEngine(), dir, config: { notifications: { targets: [base], matchers: [{ targets: ["nope"] }] } } }),
      /no target named nope/,
    );
  });
});
