import assert from "node:assert/strict";
import { test } from "node:test";
import { QuiescePolicy } from "@lull/proto";
import { LullError } from "@lull/shared";
import { parseInvocation } from "./args.js";
import { DEFAULT_SOCKET, resolveSettings } from "./config.js";

const JOB = "j-0123456789abcdefghijklmnop";

function usageError(argv: string[], pattern: RegExp): void {
  assert.throws(
    () => parseInvocation(argv),
    (err: unknown) => err instanceof LullError && err.code === "LULL_E_INVALID_ARGUMENT" && pattern.test(err.message),
  );
}

test("backup takes the guest and its options; global options go before or after the command", () => {
  const inv = parseInvocation(["--agent", "10.0.0.1:7450", "backup", "demo", "--wait", "--policy", "crash-consistent", "--key", "k1", "--quiesce-timeout", "5000", "--json"]);
  assert.deepEqual(inv, {
    agent: "10.0.0.1:7450",
    json: true,
    command: { name: "backup", guest: "demo", wait: true, policy: QuiescePolicy.QUIESCE_POLICY_CRASH_CONSISTENT, key: "k1", quiesceTimeoutMs: 5000 },
  });
  const plain = parseInvocation(["backup", "101"]);
  assert.deepEqual(plain.command, { name: "backup", guest: "101", wait: false, policy: QuiescePolicy.QUIESCE_POLICY_UNSPECIFIED, quiesceTimeoutMs: 0 });
  assert.equal(plain.json, false);
});

test("every command parses its arguments", () => {
  assert.deepEqual(parseInvocation(["jobs", "--guest", "demo", "--active"]).command, { name: "jobs", guest: "demo", active: true, limit: 0 });
  assert.deepEqual(parseInvocation(["job", "demo", JOB]).command, { name: "job", guest: "demo", jobId: JOB });
  assert.deepEqual(parseInvocation(["cancel", "demo", JOB, "--reason", "maintenance window"]).command, {
    name: "cancel", guest: "demo", jobId: JOB, reason: "maintenance window",
  });
  assert.deepEqual(parseInvocation(["events", "--follow", "--after", "41", "--job", JOB]).command, {
    name: "events", jobId: JOB, afterSeq: 41, follow: true,
  });
  assert.deepEqual(parseInvocation(["--agent=unix:///run/lull/agent.sock", "info"]), {
    agent: "unix:///run/lull/agent.sock", json: false, command: { name: "info" },
  });
  assert.equal(parseInvocation(["--help"]).command.name, "help");
  assert.equal(parseInvocation(["backup", "-h"]).command.name, "help");
});

test("bad arguments are usage errors that say what is wrong", () => {
  usageError([], /missing command/);
  usageError(["frobnicate"], /unknown command "frobnicate"/);
  usageError(["backup"], /missing <guest>/);
  usageError(["info", "extra"], /unexpected argument "extra"/); // (`backup demo extra` is a group of two guests)
  usageError(["backup", "demo", "demo"], /a guest is listed twice/);
  usageError(["backup", "demo;rm -rf /"], /guest is not a valid guest id/);
  usageError(["backup", "demo", "--policy", "maybe"], /--policy must be fail or crash-consistent/);
  usageError(["backup", "demo", "--quiesce-timeout", "1s"], /--quiesce-timeout must be a whole number/);
  usageError(["backup", "demo", "--quiesce-timeout", "5"], /between 100 and 3600000/);
  usageError(["backup", "demo", "--key", "has space"], /--key is not a valid idempotency key/);
  usageError(["job", "demo", "j-short"], /job-id is not a valid job id/);
  usageError(["events", "--after", "-1"], /Unknown option|--after/);
  usageError(["jobs", "--follow"], /Unknown option '--follow'/);
});

test("the agent is the local socket unless --agent / LULL_AGENT names a network agent; --socket and LULL_SOCKET win", () => {
  assert.equal(resolveSettings(undefined, {}).agentAddress, `unix://${DEFAULT_SOCKET}`);
  assert.equal(resolveSettings(undefined, { LULL_AGENT: "pve1:7450" }).agentAddress, "pve1:7450");
  assert.equal(resolveSettings({ agent: "[::1]:7000" }, { LULL_AGENT: "pve1:7450" }).agentAddress, "[::1]:7000");
  assert.equal(resolveSettings({ socket: "/tmp/a.sock" }, { LULL_AGENT: "pve1:7450" }).agentAddress, "unix:///tmp/a.sock");
  assert.equal(resolveSettings(undefined, { LULL_AGENT: "pve1:7450", LULL_SOCKET: "/tmp/b.sock" }).agentAddress, "unix:///tmp/b.sock");
  assert.throws(() => resolveSettings({ socket: "/tmp/a.sock", agent: "pve1:7450" }, {}), /--socket or --agent, not both/);
  assert.throws(() => resolveSettings({ socket: "relative.sock" }, {}), /--socket: the socket must be an absolute path/);
  assert.throws(() => resolveSettings(undefined, { LULL_AGENT: "pve1" }), /LULL_AGENT: agent address must be host:port/);
  assert.throws(() => resolveSettings({ agent: "host:99999" }, {}), /--agent: agent address/);
});

test("over the network a token needs a pinned fingerprint; the socket needs neither", () => {
  assert.throws(() => resolveSettings({ agent: "pve1:7450", tokenFile: "/nonexistent" }, {}), /only sent over TLS/);
  assert.throws(() => resolveSettings({ agent: "pve1:7450", tlsFingerprint: "AB:CD" }, {}), /--tls-fingerprint/);
  const fp = `sha256:${"ab:".repeat(31)}ab`;
  const s = resolveSettings({ agent: "pve1:7450", tlsFingerprint: fp }, {});
  assert.equal(s.tls?.fingerprint, fp.toUpperCase().replace("SHA256", "sha256"));
  assert.equal(s.token, undefined);
  assert.equal(resolveSettings({ socket: "/tmp/a.sock", tlsFingerprint: fp }, {}).tls, undefined);
  assert.throws(() => resolveSettings({ agent: "pve1:7450", tlsFingerprint: fp, tokenFile: "/nonexistent/t" }, {}), /--token-file: cannot read/);
});

test("wait takes the guest, the job and --until snapshotted|done, with an optional --timeout", () => {
  assert.deepEqual(parseInvocation(["--json", "wait", "demo", JOB, "--until", "snapshotted"]).command, {
    name: "wait", guest: "demo", jobId: JOB, until: "snapshotted", timeoutMs: 0,
  });
  assert.deepEqual(parseInvocation(["wait", "demo", JOB, "--until", "done", "--timeout", "60000"]).command, {
    name: "wait", guest: "demo", jobId: JOB, until: "done", timeoutMs: 60000,
  });
  usageError(["wait", "demo", JOB], /--until must be snapshotted or done, got nothing/);
  usageError(["wait", "demo", JOB, "--until", "archived"], /--until must be snapshotted or done, got "archived"/);
  usageError(["wait", "demo", JOB, "--until", "done", "--timeout", "soon"], /--timeout must be a whole number/);
  usageError(["wait", "demo", "--until", "done"], /wait: missing <job-id>/);
  usageError(["wait", "demo", "not-a-job", "--until", "done"], /job-id/);
});
