// Component test of the network listener's credentials: a real agent (TLS with its own CA,
// SQLite, loopback gRPC) with two guests; tokens of each guest, a stack, an operator, expired
// and revoked ones; every RPC of lull.v1.Agent addressed to guest 101 with each of them.
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { Client, Metadata, credentials, type ServiceError } from "@grpc/grpc-js";
import { Phase, type AgentClient, type AgentInfo, type Job } from "@lull/proto";
import { createAgentClient, type AgentTlsTrust } from "@lull/shared";
import { startTestAgent, waitForJob, type TestAgent } from "../testing/agent-harness.js";
import { FakeEngine } from "../testing/fake-engine.js";
import { agentRpcs, invoke, requestFor, type CallOutcome } from "./testing/rpc-calls.js";

const dir = mkdtempSync(join(tmpdir(), "lull-scope-"));
let t: TestAgent;
let trust: AgentTlsTrust;
let jobId: string;
const tokens: Record<string, string> = {};
const clients: AgentClient[] = [];

function clientWith(token: string | undefined, tls: AgentTlsTrust | "plain" = trust): AgentClient {
  const c = createAgentClient({ address: t.agent.address, tls: tls === "plain" ? undefined : tls, token });
  clients.push(c);
  return c;
}

/** Each RPC addressed to guest 101 (its job, its stack `app`). */
function requestsFor101(): Record<string, Record<string, unknown>> {
  return {
    getAgentInfo: {},
    startBackup: { guestId: "101", idempotencyKey: "scope-test" },
    getJob: { guestId: "101", jobId },
    listJobs: { guestId: "101" },
    cancelJob: { guestId: "101", jobId, reason: "not yours" },
    registerStack: { guestId: "101", stack: "app", controllerId: "intruder" },
    unregisterStack: { guestId: "101", stack: "app", controllerId: "ctl-101" },
    acknowledgeQuiesce: { guestId: "101", jobId, stack: "app" },
    refuseQuiesce: { guestId: "101", jobId, stack: "app", reason: "no" },
    reportResumed: { guestId: "101", jobId, stack: "app", downtimeMs: 1 },
    watchEvents: { guestId: "101" },
    watchEventBatches: { guestId: "101" },
    startGroupBackup: { guestIds: ["101"], idempotencyKey: "scope-group" },
    getGroup: { groupRunId: "g-01zzzzzzzzzzzzzzzzzzzzzzzz" },
    listGroups: { guestId: "101" },
    cancelGroup: { groupRunId: "g-01zzzzzzzzzzzzzzzzzzzzzzzz", reason: "not yours" },
    joinGroupRun: { groupRunId: "g-01zzzzzzzzzzzzzzzzzzzzzzzz", guestId: "101" },
    releaseGroupMember: { groupRunId: "g-01zzzzzzzzzzzzzzzzzzzzzzzz", guestId: "101", go: 3 },
    verifyPoint: { guestId: "101", pointId: "b-01zzzzzzzzzzzzzzzzzzzzzzzz" },
    listVerifications: { guestId: "101" },
    prunePoints: { guestId: "101", dryRun: false },
    listSchedules: {},
    listBackups: { guestId: "101" },
    getBackup: { guestId: "101", pointId: "b-01zzzzzzzzzzzzzzzzzzzzzzzz" },
    protectBackup: { guestId: "101", pointId: "b-01zzzzzzzzzzzzzzzzzzzzzzzz" },
    unprotectBackup: { guestId: "101", pointId: "b-01zzzzzzzzzzzzzzzzzzzzzzzz" },
    restorePoint: { guestId: "101", pointId: "b-01zzzzzzzzzzzzzzzzzzzzzzzz", target: { $case: "toDir", value: "/tmp/scope-test-restore" } },
    getRestore: { restoreId: "r-20261203T000000-000000" },
    listRestores: { guestId: "101" },
    cancelRestore: { restoreId: "r-20261203T000000-000000", reason: "not yours" },
  };
}

async function everyRpc(client: AgentClient): Promise<Map<string, CallOutcome>> {
  const requests = requestsFor101();
  const out = new Map<string, CallOutcome>();
  for (const rpc of agentRpcs()) {
    const partial = requests[rpc.key];
    assert.ok(partial, `the scope test does not know how to address ${rpc.rpc} to a guest: add it to requestsFor101`);
    out.set(rpc.rpc, await invoke(client, rpc, requestFor(rpc.rpc, partial)));
  }
  return out;
}

function codesOf(outcomes: Map<string, CallOutcome>): Record<string, string> {
  return Object.fromEntries([...outcomes].map(([rpc, o]) => [rpc, o.ok ? "OK" : o.error.code]));
}

const job101 = async (): Promise<Job> => t.api.getJob({ guestId: "101", jobId });

before(async () => {
  t = await startTestAgent({
    dir,
    engine: new FakeEngine(),
    guests: [
      { id: "101", driver: "dir", snapshot: "copy", volumes: [{ name: "data", path: join(dir, "v101") }] },
      { id: "102", driver: "dir", snapshot: "copy", volumes: [{ name: "data", path: join(dir, "v102") }] },
    ],
    config: {
      listen: { address: "127.0.0.1:0", socket: join(dir, "run", "agent.sock") },
      quiesce: { timeoutMs: 60_000, policy: "fail" },
      limits: { registerStack: { burst: 5, perSecond: 0.5 }, maxWatchStreams: 2 },
    },
  });
  assert.ok(t.agent.fingerprint, "the network listener serves TLS");
  trust = { fingerprint: t.agent.fingerprint };
  const now = Date.now();
  const make = (name: string, input: Parameters<TestAgent["agent"]["tokens"]["create"]>[0], at = now) => {
    const created = t.agent.tokens.create(input, at);
    tokens[name] = created.token;
    return created.record.id;
  };
  make("g101", { kind: "guest", guestId: "101" });
  make("g102", { kind: "guest", guestId: "102" });
  make("s101app", { kind: "guest", guestId: "101", stack: "app" });
  make("operator", { kind: "operator" });
  make("expired", { kind: "guest", guestId: "101", ttlMs: 60_000 }, now - 120_000);
  t.agent.tokens.revoke(make("revoked", { kind: "guest", guestId: "101" }), now);

  // Guest 101's controller registers its stack; a backup of 101 then waits in quiescing for its ack.
  const own = clientWith(tokens.g101);
  const reg = await invoke(own, agentRpcs().find((r) => r.key === "registerStack")!, requestFor("RegisterStack", { guestId: "101", stack: "app", controllerId: "ctl-101" }));
  assert.ok(reg.ok, reg.ok ? "" : reg.error.message);
  const started = await t.api.startBackup({ guestId: "101", idempotencyKey: "op-101" });
  jobId = started.job!.id;
  await waitForJob(t, "101", jobId, (j) => j.phase === Phase.PHASE_QUIESCING);
});

after(async () => {
  for (const c of clients) c.close();
  await t?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe("credentials on the network listener", () => {
  it("a second guest's token is refused on every RPC of the first guest, and changes nothing", async () => {
    const before = await job101();
    const outcomes = await everyRpc(clientWith(tokens.g102));
    const expected = Object.fromEntries(agentRpcs().map((r) => [r.rpc, r.key === "getAgentInfo" ? "OK" : "LULL_E_PERMISSION_DENIED"]));
    assert.deepEqual(codesOf(outcomes), expected);
    const info = outcomes.get("GetAgentInfo") as { ok: true; value: AgentInfo };
    assert.deepEqual(info.value.guests.map((g) => g.id), ["102"], "agent info shows only the token's guest");
    const afterCalls = await job101();
    assert.equal(afterCalls.phase, Phase.PHASE_QUIESCING, "the job was not cancelled, acknowledged or refused");
    assert.deepEqual(afterCalls.stacks, before.stacks);
  });

  it("no token, an expired token and a revoked token are UNAUTHENTICATED on every RPC", async () => {
    for (const name of [undefined, "expired", "revoked"]) {
      const outcomes = await everyRpc(clientWith(name === undefined ? undefined : tokens[name]));
      for (const [rpc, code] of Object.entries(codesOf(outcomes))) assert.equal(code, "LULL_E_UNAUTHENTICATED", `${rpc} with ${name ?? "no"} token`);
      const messages = [...outcomes.values()].map((o) => (o.ok ? "" : o.error.message)).join("\n");
      if (name === "expired") assert.match(messages, /has expired/);
      if (name === "revoked") assert.match(messages, /was revoked/);
    }
    assert.equal((await job101()).phase, Phase.PHASE_QUIESCING);
  });

  it("a guest token cannot make operator-wide calls; a stack token acts only for its stack", async () => {
    const g101 = clientWith(tokens.g101);
    const rpc = (key: string) => agentRpcs().find((r) => r.key === key)!;
    for (const [key, req] of [["listJobs", { guestId: "" }], ["watchEvents", { guestId: "" }], ["watchEventBatches", { guestId: "" }], ["listGroups", { guestId: "" }]] as const) {
      const o = await invoke(g101, rpc(key), requestFor(rpc(key).rpc, req));
      assert.equal(o.ok ? "OK" : o.error.code, "LULL_E_PERMISSION_DENIED", key);
    }
    const mine = await invoke(g101, rpc("getJob"), requestFor("GetJob", { guestId: "101", jobId }));
    assert.ok(mine.ok);
    const info = await invoke(g101, rpc("getAgentInfo"), requestFor("GetAgentInfo", {}));
    assert.deepEqual((info as { value: AgentInfo }).value.guests.map((g) => g.id), ["101"]);

    const stack = clientWith(tokens.s101app);
    const other = await invoke(stack, rpc("registerStack"), requestFor("RegisterStack", { guestId: "101", stack: "db", controllerId: "x" }));
    assert.equal(other.ok ? "OK" : other.error.code, "LULL_E_PERMISSION_DENIED");
    for (const key of ["startBackup", "cancelJob", "cancelGroup"]) {
      const o = await invoke(stack, rpc(key), requestFor(rpc(key).rpc, requestsFor101()[key]!));
      assert.equal(o.ok ? "OK" : o.error.code, "LULL_E_PERMISSION_DENIED", key);
    }
    // A group spans guests: CancelGroup is an operator call, whatever guest the token holds.
    const cancelGroup = await invoke(g101, rpc("cancelGroup"), requestFor("CancelGroup", requestsFor101().cancelGroup!));
    assert.equal(cancelGroup.ok ? "OK" : cancelGroup.error.code, "LULL_E_PERMISSION_DENIED", "cancelGroup with a guest token");
    assert.match((cancelGroup as { error: Error }).error.message, /CancelGroup needs an operator credential/);
    assert.ok((await invoke(stack, rpc("getJob"), requestFor("GetJob", { guestId: "101", jobId }))).ok);

    const operator = clientWith(tokens.operator);
    const all = await invoke(operator, rpc("listJobs"), requestFor("ListJobs", { guestId: "" }));
    assert.ok(all.ok, "an operator token lists every guest's jobs");
    const unknownRun = await invoke(operator, rpc("cancelGroup"), requestFor("CancelGroup", requestsFor101().cancelGroup!));
    assert.equal(unknownRun.ok ? "OK" : unknownRun.error.code, "LULL_E_GROUP_NOT_FOUND", "an operator token passes to the handler");
  });

  it("RegisterStack and WatchEvents are limited per credential", async () => {
    const g102 = clientWith(tokens.g102);
    const reg = agentRpcs().find((r) => r.key === "registerStack")!;
    const codes: string[] = [];
    for (let i = 0; i < 7; i++) {
      const o = await invoke(g102, reg, requestFor("RegisterStack", { guestId: "102", stack: "web", controllerId: "ctl-102" }));
      codes.push(o.ok ? "OK" : o.error.code);
    }
    assert.deepEqual(codes, ["OK", "OK", "OK", "OK", "OK", "LULL_E_RATE_LIMITED", "LULL_E_RATE_LIMITED"]);

    const streams = [0, 1, 2].map(() => g102.watchEvents({ guestId: "102", jobId: "", afterSeq: 0 }));
    for (const s of streams.slice(0, 2)) s.on("error", () => undefined); // CANCELLED by us below
    const third = await new Promise<ServiceError>((resolve) => streams[2]!.on("error", resolve));
    assert.equal(third.code, 8, "RESOURCE_EXHAUSTED");
    assert.match(third.details, /LULL_E_RATE_LIMITED/);
    for (const s of streams) s.cancel();
  });

  it("undecodable request bytes are INVALID_ARGUMENT, not INTERNAL", async () => {
    const raw = new Client(t.agent.address, credentials.createInsecure());
    clients.push(raw as unknown as AgentClient);
    const socketRaw = new Client(`unix://${t.agent.socketPath}`, credentials.createInsecure());
    // field 4 (downtime_ms) as a varint of 2^63: beyond what the agent can hold as a number.
    const hostile = Buffer.from([0x0a, 0x03, 0x31, 0x30, 0x31, 0x20, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01]);
    const err = await new Promise<ServiceError>((resolve) =>
      socketRaw.makeUnaryRequest("/lull.v1.Agent/ReportResumed", (b: Buffer) => b, (b: Buffer) => b, hostile, new Metadata(), {}, (e) => resolve(e as ServiceError)),
    );
    socketRaw.close();
    raw.close();
    assert.equal(err.code, 3, `INVALID_ARGUMENT, got ${err.code} ${err.details}`);
    assert.match(err.details, /LULL_E_INVALID_ARGUMENT: the request is not a valid ReportResumed message/);
  });

  it("the client refuses an agent whose certificate does not match the pin; the CA file and the server pin work", async () => {
    const rpc = agentRpcs().find((r) => r.key === "getAgentInfo")!;
    const wrong = `sha256:${"00:".repeat(31)}00`;
    const refused = await invoke(clientWith(tokens.g101, { fingerprint: wrong }), rpc, requestFor("GetAgentInfo", {}));
    assert.equal(refused.ok, false);
    assert.match((refused as { error: Error }).error.message, /does not match the pinned fingerprint/);
    const caPem = readFileSync(join(dir, "data", "tls", "ca.crt"), "utf8");
    assert.ok((await invoke(clientWith(tokens.g101, { caPem }), rpc, requestFor("GetAgentInfo", {}))).ok, "the CA file");
    const serverPem = readFileSync(join(dir, "data", "tls", "server.crt"), "utf8");
    const { certificateFingerprint } = await import("@lull/shared");
    assert.ok((await invoke(clientWith(tokens.g101, { fingerprint: certificateFingerprint(serverPem) }), rpc, requestFor("GetAgentInfo", {}))).ok, "the server pin");
    const plain = await invoke(clientWith(tokens.g101, "plain"), rpc, requestFor("GetAgentInfo", {}));
    assert.equal(plain.ok, false, "plain TCP to the TLS listener fails");
  });

  it("no token, no secret in any log line", () => {
    const text = t.logs.map((l) => JSON.stringify(l)).join("\n");
    for (const [name, token] of Object.entries(tokens)) {
      assert.ok(!text.includes(token), `token ${name} in the logs`);
      const secret = token.slice("lull_".length + 13);
      assert.equal(secret.length, 43);
      assert.ok(!text.includes(secret), `secret of ${name} in the logs: ${t.logs.map((l) => JSON.stringify(l)).find((l) => l.includes(secret))}`);
    }
    const refusals = t.logs.filter((l) => l.msg === "call refused");
    assert.ok(refusals.some((l) => l.code === "LULL_E_PERMISSION_DENIED" && typeof l.tokenId === "string" && l.principal === "guest 102"));
    assert.ok(refusals.some((l) => l.code === "LULL_E_UNAUTHENTICATED"));
  });
});
