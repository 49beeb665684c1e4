// `lull-agent token create|list|revoke`. The secret of a new token goes to stdout once (alone on
// its line, so `TOKEN=$(lull-agent token create --guest 101)` works); everything else to stderr.
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { LullError } from "@lull/shared";
import { DATABASE_FILE } from "../datadir/database-file.js";
import { describeScope } from "../auth/principal.js";
import { TokenStore, type TokenRecord } from "../auth/token-store.js";
import { parseDuration, validateTokenId } from "../auth/token.js";
import { EXIT, type CliContext } from "./context.js";

const usage = (message: string) => new LullError("LULL_E_INVALID_ARGUMENT", message);

function withStore<T>(ctx: CliContext, fn: (store: TokenStore) => T): T {
  mkdirSync(ctx.dataDir, { recursive: true, mode: 0o700 });
  const store = TokenStore.open(join(ctx.dataDir, DATABASE_FILE));
  try {
    return fn(store);
  } finally {
    store.close();
  }
}

function status(t: TokenRecord, now: number): string {
  if (t.revokedAt !== undefined) return "revoked";
  if (t.expiresAt !== undefined && t.expiresAt <= now) return "expired";
  return "active";
}

const iso = (ms: number | undefined) => (ms === undefined ? "never" : new Date(ms).toISOString());

function view(t: TokenRecord, now: number) {
  return {
    id: t.id,
    scope: describeScope(t),
    kind: t.kind,
    ...(t.guestId !== undefined ? { guestId: t.guestId } : {}),
    ...(t.stack !== undefined ? { stack: t.stack } : {}),
    status: status(t, now),
    createdAt: iso(t.createdAt),
    expiresAt: t.expiresAt === undefined ? null : iso(t.expiresAt),
    revokedAt: t.revokedAt === undefined ? null : iso(t.revokedAt),
    note: t.note,
  };
}

function create(ctx: CliContext): number {
  const { values, positionals, output } = ctx;
  if (positionals.length > 0) throw usage(`token create: unexpected argument "${positionals[0]}"`);
  const str = (k: string) => (typeof values[k] === "string" ? (values[k] as string) : undefined);
  const operator = values.operator === true;
  const guestId = str("guest");
  const stack = str("stack");
  if (stack !== undefined && guestId === undefined) throw usage("token create: --stack needs --guest");
  if (operator === (guestId !== undefined)) throw usage("token create: give exactly one of --guest ID or --operator");
  if (guestId !== undefined && ctx.config && !ctx.config.guests.some((g) => g.id === guestId)) {
    throw usage(`token create: guest ${guestId} is not configured on this agent`);
  }
  const ttl = str("ttl");
  const now = ctx.clock.now();
  const { token, record } = withStore(ctx, (store) =>
    store.create({ kind: operator ? "operator" : "guest", guestId, stack, ttlMs: ttl === undefined ? undefined : parseDuration(ttl), note: str("note") }, now),
  );
  if (values.json === true) {
    output.out(JSON.stringify({ ...view(record, now), token }));
  } else {
    output.out(token);
    output.err(`token ${record.id} for ${describeScope(record)}, expires ${iso(record.expiresAt)}; it is shown only this once`);
  }
  return EXIT.ok;
}

function list(ctx: CliContext): number {
  if (ctx.positionals.length > 0) throw usage(`token list: unexpected argument "${ctx.positionals[0]}"`);
  const now = ctx.clock.now();
  const tokens = withStore(ctx, (store) => store.list()).map((t) => view(t, now));
  if (ctx.values.json === true) {
    ctx.output.out(JSON.stringify({ tokens }));
    return EXIT.ok;
  }
  const rows = [["ID", "SCOPE", "STATUS", "CREATED", "EXPIRES", "NOTE"], ...tokens.map((t) => [t.id, t.scope, t.status, t.createdAt, t.expiresAt ?? "never", t.note])];
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? "").length)));
  for (const r of rows) ctx.output.out(r.map((c, i) => (c ?? "").padEnd(widths[i] ?? 0)).join("  ").trimEnd());
  return EXIT.ok;
}

function revoke(ctx: CliContext): number {
  if (ctx.positionals.length !== 1) throw usage("token revoke: give one TOKEN-ID (see `lull-agent token list`)");
  const id = validateTokenId(ctx.positionals[0] as string);
  // An unknown id: the store throws LULL_E_INVALID_ARGUMENT "no token <id>".
  const changed = withStore(ctx, (store) => store.revoke(id, ctx.clock.now()));
  ctx.output.err(changed ? `token ${id} revoked` : `token ${id} was already revoked`);
  return EXIT.ok;
}

export function tokenCommand(verb: string | undefined, ctx: CliContext): number {
  switch (verb) {
    case "create":
      return create(ctx);
    case "list":
      return list(ctx);
    case "revoke":
      return revoke(ctx);
    default:
      throw usage(`token: expected create, list or revoke${verb ? `, got "${verb}"` : ""}`);
  }
}
