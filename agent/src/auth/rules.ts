// The guest scope of every RPC of lull.v1.Agent, in one table. The guard (guard.ts) applies it to
// each call before the handler runs; an RPC without a rule here is operator-only (fail closed),
// and a test fails for it so that a new RPC gets a rule when it is added.
//
// For a guest token (scope: one guest, optionally one stack of it):
//   - every guest the call reaches must be the token's guest; a call that names no guest
//     (operator-wide ListJobs / WatchEvents / ListGroups) is refused;
//   - a stack-scoped token may only read its guest's jobs and act for its own stack: it cannot
//     start or cancel backups (those act for every stack of the guest);
//   - GetAgentInfo is open to any principal, its guest list cut down to the token's guest;
//   - consistency group runs are visible to a guest token only when all their members are its guest.
// Operators (the local socket, or an operator token) may do everything.
//
// A node credential (another agent of the cluster, on the cluster listener) may make only the
// read-only calls marked `nodes: true`, for every guest; anything that acts (StartBackup, cancels,
// registrations, a WatchEvents stream that holds a stack's lease, verify, prune, restore) is
// refused: a node never acts as an operator of a guest it does not host. The exception are the
// two calls of a group run coordinated on another node (JoinGroupRun, ReleaseGroupMember:
// `nodes: true` on an operator rule, so guest tokens cannot make them): the coordinating node asks
// this node to run its own guest's member job of that run, and only the node that asked may
// release or fail that member (checked by the handler, api/remote-group-handlers.ts). See
// agent/SECURITY.md, "Groups across nodes".
import { LullError } from "@lull/shared";
import type { Principal } from "./principal.js";

export type Request = Record<string, unknown>;

/** State the rules may consult: which guests a group run covers (undefined: no such run). */
export interface RuleContext {
  groupRunGuests?: (groupRunId: string) => readonly string[] | undefined;
}

/** `nodes: true`: a call another node's agent may make with its node credential (read-only ones, and the cross-node group calls). */
export type ScopeRule = (
  /** Operators only. */
  | { kind: "operator" }
  /** Any authenticated principal; `filter` trims the response for guest tokens. */
  | { kind: "any"; filter?: (response: unknown, principal: Principal & { kind: "guest" }) => unknown }
  | {
      kind: "guest";
      /** The guests the call reaches; empty: every guest (operators only). */
      guests: (req: Request, ctx: RuleContext) => readonly string[];
      /** The stack the call acts for; undefined when this request acts for none. */
      stack?: (req: Request) => string | undefined;
      /** Whether a stack-scoped token may make this call at all. */
      stackTokens: boolean;
      /** Trims the response for guest tokens (what it lists beyond the named guest). */
      filter?: (response: unknown, principal: Principal & { kind: "guest" }) => unknown;
    }
) & { nodes?: true };

const str = (req: Request, key: string): string => (typeof req[key] === "string" ? (req[key] as string) : "");
const one = (key: string) => (req: Request) => (str(req, key) === "" ? [] : [str(req, key)]);
const stackOf = (req: Request) => str(req, "stack");
/** A WatchEvents stream that holds a stack's lease acts for that stack, as RegisterStack does. */
const heldStackOf = (req: Request): string | undefined => {
  const hold = req.holdLease;
  if (hold === undefined || hold === null) return undefined;
  return typeof hold === "object" && typeof (hold as Request).stack === "string" ? ((hold as Request).stack as string) : "";
};

/** Keyed like the generated `AgentService` (lowerCamel method names). */
export const SCOPE_RULES: Readonly<Record<string, ScopeRule>> = Object.freeze({
  getAgentInfo: {
    kind: "any",
    nodes: true,
    filter: (response, principal) => {
      const info = response as { guests?: { id: string }[] };
      return { ...info, guests: (info.guests ?? []).filter((g) => g.id === principal.guestId) };
    },
  },
  startBackup: { kind: "guest", guests: one("guestId"), stackTokens: false },
  getJob: { kind: "guest", guests: one("guestId"), stackTokens: true, nodes: true },
  listJobs: { kind: "guest", guests: one("guestId"), stackTokens: true, nodes: true },
  cancelJob: { kind: "guest", guests: one("guestId"), stackTokens: false },
  registerStack: { kind: "guest", guests: one("guestId"), stack: stackOf, stackTokens: true },
  unregisterStack: { kind: "guest", guests: one("guestId"), stack: stackOf, stackTokens: true },
  acknowledgeQuiesce: { kind: "guest", guests: one("guestId"), stack: stackOf, stackTokens: true },
  refuseQuiesce: { kind: "guest", guests: one("guestId"), stack: stackOf, stackTokens: true },
  reportResumed: { kind: "guest", guests: one("guestId"), stack: stackOf, stackTokens: true },
  watchEvents: { kind: "guest", guests: one("guestId"), stack: heldStackOf, stackTokens: true, nodes: true },
  watchEventBatches: { kind: "guest", guests: one("guestId"), stack: heldStackOf, stackTokens: true, nodes: true },
  // Restore points: a guest token reaches its own guest's points; verifying and pruning are the
  // guest's business (not a stack's), reading runs is open to its stacks too.
  verifyPoint: { kind: "guest", guests: one("guestId"), stackTokens: false },
  listVerifications: { kind: "guest", guests: one("guestId"), stackTokens: true, nodes: true },
  prunePoints: { kind: "guest", guests: one("guestId"), stackTokens: false },
  // The catalog: reading is open to the guest's stacks; protecting is the guest's business.
  listBackups: { kind: "guest", guests: one("guestId"), stackTokens: true, nodes: true },
  getBackup: { kind: "guest", guests: one("guestId"), stackTokens: true, nodes: true },
  protectBackup: { kind: "guest", guests: one("guestId"), stackTokens: false },
  unprotectBackup: { kind: "guest", guests: one("guestId"), stackTokens: false },
  // A restore writes as root on the node (any directory, a new guest): operators only.
  restorePoint: { kind: "operator" },
  getRestore: { kind: "operator" },
  listRestores: { kind: "operator" },
  cancelRestore: { kind: "operator" },
  // Consistency groups. A configured group named without its members reaches guests the request
  // does not list: operators only. Otherwise the listed members are what the agent starts (it
  // refuses a list that differs from the group's members), so holding each of them suffices.
  startGroupBackup: {
    kind: "guest",
    guests: (req) => (Array.isArray(req.guestIds) ? (req.guestIds as unknown[]).map((g) => String(g)) : []),
    stackTokens: false,
  },
  getGroup: {
    kind: "guest",
    nodes: true,
    guests: (req, ctx) => ctx.groupRunGuests?.(str(req, "groupRunId")) ?? [],
    stackTokens: true,
  },
  // A group run always spans several guests (at least two), so no guest token holds all of them.
  cancelGroup: { kind: "operator" },
  // Groups across nodes: the coordinating node (or an operator) only; the handler lets a node
  // release only members it asked to join.
  joinGroupRun: { kind: "operator", nodes: true },
  releaseGroupMember: { kind: "operator", nodes: true },
  // Schedules span guests (all of a node's, a group's): operators only.
  listSchedules: { kind: "operator", nodes: true },
  // A run with other member guests would show their jobs: a guest token sees only runs of its guest alone
  // (GetGroup refuses the others by the rule above: every member must be in scope).
  listGroups: {
    kind: "guest",
    nodes: true,
    guests: one("guestId"),
    stackTokens: true,
    filter: (response, principal) => {
      const list = response as { groups?: { guestIds?: string[] }[] };
      return { ...list, groups: (list.groups ?? []).filter((g) => (g.guestIds ?? []).every((id) => id === principal.guestId)) };
    },
  },
} satisfies Record<string, ScopeRule>);

export const OPERATOR_ONLY: ScopeRule = Object.freeze({ kind: "operator" });

const denied = (message: string) => new LullError("LULL_E_PERMISSION_DENIED", message);

/** Throws LULL_E_PERMISSION_DENIED unless `principal` may make this call. Messages name no secret. */
export function authorize(method: string, rule: ScopeRule, principal: Principal, req: Request, ctx: RuleContext): void {
  if (principal.kind === "operator") return;
  if (principal.kind === "node") {
    // A read-only call that acts for a stack in this request (a stream holding a lease) acts.
    if (rule.nodes === true && !(rule.kind === "guest" && rule.stack?.(req) !== undefined)) return;
    throw denied(`${method} cannot be made with a node credential: node ${principal.node} may only read from this agent (node-to-node calls are read-only, but for joining a group run it coordinates)`);
  }
  switch (rule.kind) {
    case "any":
      return;
    case "operator":
      throw denied(`${method} needs an operator credential`);
    case "guest": {
      const scope = principal.stack ? `guest ${principal.guestId} stack ${principal.stack}` : `guest ${principal.guestId}`;
      if (principal.stack !== undefined && !rule.stackTokens) {
        throw denied(`${method} acts for every stack of a guest; a token of ${scope} cannot make it`);
      }
      const guests = rule.guests(req, ctx);
      if (guests.length === 0) throw denied(`${method} without a guest reaches every guest; a token of ${scope} cannot make it`);
      if (guests.some((g) => g !== principal.guestId)) throw denied(`a token of ${scope} cannot act on another guest`);
      const stack = rule.stack?.(req);
      if (principal.stack !== undefined && stack !== undefined && stack !== principal.stack) {
        throw denied(`a token of ${scope} cannot act for another stack`);
      }
      return;
    }
  }
}
