import assert from "node:assert/strict";
import { test } from "node:test";
import { AgentService } from "@lull/proto";
import { LullError } from "@lull/shared";
import type { Principal } from "./principal.js";
import { SCOPE_RULES, authorize, type Request, type ScopeRule } from "./rules.js";

const operator: Principal = { kind: "operator", id: "op0000000000", via: "token" };
const guest101: Principal = { kind: "guest", id: "g10100000000", guestId: "101" };
const stackApp: Principal = { kind: "guest", id: "s10100000000", guestId: "101", stack: "app" };

const denied = (err: unknown) => err instanceof LullError && err.code === "LULL_E_PERMISSION_DENIED";
const check = (method: string, principal: Principal, req: Request) => {
  const rule = SCOPE_RULES[method] as ScopeRule;
  authorize(method, rule, principal, req, { groupRunGuests: (id) => (id === "g-101" ? ["101"] : id === "g-both" ? ["101", "102"] : undefined) });
};

test("every RPC of lull.v1.Agent has a guest-scope rule (add one to auth/rules.ts with a new RPC)", () => {
  const missing = Object.keys(AgentService).filter((m) => !(m in SCOPE_RULES));
  assert.deepEqual(missing, [], `RPCs without a scope rule (operator-only until they get one): ${missing.join(", ")}`);
});

test("operators may make every call", () => {
  for (const method of Object.keys(AgentService)) check(method, operator, {});
});

test("a guest token reaches only its guest, and never every guest", () => {
  for (const [method, rule] of Object.entries(SCOPE_RULES)) {
    if (rule.kind !== "guest") continue;
    const mine: Request = { guestId: "101", guestIds: ["101"], groupRunId: "g-101", stack: "app" };
    const theirs: Request = { guestId: "102", guestIds: ["102"], groupRunId: "g-both", stack: "app" };
    const none: Request = { guestId: "", guestIds: [], groupRunId: "", stack: "app" };
    check(method, guest101, mine);
    assert.throws(() => check(method, guest101, theirs), denied, `${method} for another guest`);
    assert.throws(() => check(method, guest101, none), denied, `${method} without a guest`);
  }
  assert.throws(() => check("startGroupBackup", guest101, { guestIds: ["101", "102"] }), denied);
  assert.throws(() => check("startGroupBackup", guest101, { groupId: "web", guestIds: [] }), denied);
  assert.throws(() => check("getGroup", guest101, { groupRunId: "no-such-run" }), denied, "an unknown run is no oracle");
  check("getAgentInfo", guest101, {});
});

test("a stack token acts only for its stack and cannot start or cancel the guest's backups", () => {
  check("registerStack", stackApp, { guestId: "101", stack: "app" });
  check("acknowledgeQuiesce", stackApp, { guestId: "101", stack: "app" });
  check("getJob", stackApp, { guestId: "101" });
  check("watchEvents", stackApp, { guestId: "101" });
  check("watchEventBatches", stackApp, { guestId: "101" });
  for (const method of ["registerStack", "unregisterStack", "acknowledgeQuiesce", "refuseQuiesce", "reportResumed"]) {
    assert.throws(() => check(method, stackApp, { guestId: "101", stack: "db" }), denied, method);
  }
  for (const method of ["startBackup", "cancelJob", "startGroupBackup", "cancelGroup"]) {
    assert.throws(() => check(method, stackApp, { guestId: "101", guestIds: ["101"] }), denied, method);
  }
  // A stream that holds a stack's lease acts for that stack, as RegisterStack does.
  for (const method of ["watchEvents", "watchEventBatches"]) {
    check(method, stackApp, { guestId: "101", holdLease: { stack: "app", controllerId: "c1" } });
    check(method, guest101, { guestId: "101", holdLease: { stack: "db", controllerId: "c2" } });
    assert.throws(() => check(method, stackApp, { guestId: "101", holdLease: { stack: "db", controllerId: "c1" } }), denied, `${method} holding another stack's lease`);
    assert.throws(() => check(method, stackApp, { guestId: "101", holdLease: {} }), denied, `${method} holding a lease without a stack`);
  }
});

test("cancelling a group run is an operator call: a guest token is refused even for a run of its own guest", () => {
  assert.equal(SCOPE_RULES.cancelGroup?.kind, "operator");
  for (const groupRunId of ["g-101", "g-both", "no-such-run"]) {
    assert.throws(() => check("cancelGroup", guest101, { groupRunId, reason: "x" }), denied, groupRunId);
  }
  check("cancelGroup", operator, { groupRunId: "g-both" });
});

test("responses are cut down to the guest: agent info lists only its guest, group lists only its own runs", () => {
  const info = SCOPE_RULES.getAgentInfo as Extract<ScopeRule, { kind: "any" }>;
  const filtered = info.filter?.({ node: "pve1", guests: [{ id: "101" }, { id: "102" }] }, guest101 as Principal & { kind: "guest" });
  assert.deepEqual(filtered, { node: "pve1", guests: [{ id: "101" }] });
  const groups = SCOPE_RULES.listGroups as Extract<ScopeRule, { kind: "guest" }>;
  const list = groups.filter?.({ groups: [{ guestIds: ["101"] }, { guestIds: ["101", "102"] }] }, guest101 as Principal & { kind: "guest" });
  assert.deepEqual(list, { groups: [{ guestIds: ["101"] }] });
});

test("refusals never repeat what the caller sent", () => {
  const hostile = "102$(touch /tmp/pwned)";
  try {
    check("getJob", guest101, { guestId: hostile });
    assert.fail("expected a refusal");
  } catch (err) {
    assert.ok(denied(err));
    assert.ok(!(err as Error).message.includes(hostile));
  }
});

test("a node credential makes only the read-only calls and the cross-node group calls, for every guest, and acts on nothing else", () => {
  const node: Principal = { kind: "node", id: "node:pve2", node: "pve2" };
  const readOnly = ["getAgentInfo", "listJobs", "getJob", "watchEvents", "watchEventBatches", "listBackups", "getBackup", "listVerifications", "listSchedules", "listGroups", "getGroup"];
  // A group run coordinated on another node: the handler lets a node release only members it asked to join.
  const groupCalls = ["joinGroupRun", "releaseGroupMember"];
  const req: Request = { guestId: "", guestIds: [], groupRunId: "" };
  for (const method of Object.keys(AgentService)) {
    if (readOnly.includes(method) || groupCalls.includes(method)) check(method, node, req);
    else assert.throws(() => check(method, node, { guestId: "101", guestIds: ["101"] }), denied, `${method} with a node credential`);
  }
  assert.deepEqual(Object.entries(SCOPE_RULES).filter(([, r]) => r.nodes === true).map(([m]) => m).sort(), [...readOnly, ...groupCalls].sort());
  const guest: Principal = { kind: "guest", id: "t1", guestId: "101" };
  for (const method of groupCalls) assert.throws(() => check(method, guest, { guestId: "101", groupRunId: "g-01zzzzzzzzzzzzzzzzzzzzzzzz" }), denied, `${method} with a guest token`);
  assert.throws(() => check("startBackup", node, { guestId: "101" }), /node-to-node calls are read-only/);
  // Following a guest's events is reading; holding a stack's lease on that stream is acting.
  check("watchEvents", node, { guestId: "101" });
  for (const method of ["watchEvents", "watchEventBatches"]) {
    assert.throws(() => check(method, node, { guestId: "101", holdLease: { stack: "app", controllerId: "c1" } }), denied, `${method} holding a lease with a node credential`);
  }
});
