// Tokens in the agent's SQLite database (table `tokens`, migration 3): only the id, the scope and
// the SHA-256 of the secret are stored. Synchronous like the job store; the agent and the
// `lull-agent token` command each open their own connection (WAL), so a token created or revoked
// while the agent runs counts from its next call — nothing is cached.
import type { Database as Db, Statement } from "better-sqlite3";
import { LullError, validate } from "@lull/shared";
import { openAgentDatabase } from "../ledger/database.js";
import type { Principal } from "./principal.js";
import { issueSecret, parseToken, secretMatches, validateTokenId } from "./token.js";

export type TokenScope = "operator" | "guest";

export interface TokenRecord {
  id: string;
  kind: TokenScope;
  guestId?: string | undefined;
  stack?: string | undefined;
  note: string;
  createdAt: number;
  expiresAt?: number | undefined;
  revokedAt?: number | undefined;
}

export interface CreateTokenInput {
  kind: TokenScope;
  guestId?: string | undefined;
  stack?: string | undefined;
  /** Lifetime from now; undefined: until revoked. */
  ttlMs?: number | undefined;
  note?: string | undefined;
}

interface TokenRow {
  id: string;
  scope: string;
  guest_id: string | null;
  stack: string | null;
  secret_hash: Buffer;
  note: string;
  created_at: number;
  expires_at: number | null;
  revoked_at: number | null;
}

/** Why a presented token was refused; the message never contains the token. */
export class TokenRefused extends LullError {
  constructor(message: string) {
    super("LULL_E_UNAUTHENTICATED", message);
  }
}

function fromRow(row: TokenRow): TokenRecord {
  return {
    id: row.id,
    kind: row.scope === "operator" ? "operator" : "guest",
    guestId: row.guest_id ?? undefined,
    stack: row.stack ?? undefined,
    note: row.note,
    createdAt: row.created_at,
    expiresAt: row.expires_at ?? undefined,
    revokedAt: row.revoked_at ?? undefined,
  };
}

export class TokenStore {
  private readonly stmt: Record<"insert" | "byId" | "all" | "revoke", Statement>;

  private constructor(
    private readonly db: Db,
    private readonly owned: boolean,
  ) {
    this.stmt = {
      insert: db.prepare(
        `INSERT INTO tokens (id, scope, guest_id, stack, secret_hash, note, created_at, expires_at)
         VALUES (@id, @scope, @guest_id, @stack, @secret_hash, @note, @created_at, @expires_at)`,
      ),
      byId: db.prepare("SELECT * FROM tokens WHERE id = ?"),
      all: db.prepare("SELECT * FROM tokens ORDER BY created_at, id"),
      revoke: db.prepare("UPDATE tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL"),
    };
  }

  /** Opens (and creates or migrates) the agent's database at `path` (the `token` CLI). */
  static open(path: string, options: { busyTimeoutMs?: number } = {}): TokenStore {
    return new TokenStore(openAgentDatabase(path, options), true);
  }

  /** On the agent's open connection (the job store's, already migrated); its owner closes it. */
  static over(db: Db): TokenStore {
    return new TokenStore(db, false);
  }

  close(): void {
    if (this.owned && this.db.open) this.db.close();
  }

  /** Issues a token; the returned `token` is the only copy of its secret. */
  create(input: CreateTokenInput, now: number): { token: string; record: TokenRecord } {
    const guestId = input.kind === "guest" ? validate.guestId(input.guestId ?? "", "guest") : undefined;
    const stack = input.kind === "guest" && input.stack !== undefined ? validate.stack(input.stack, "stack") : undefined;
    if (input.kind === "operator" && (input.guestId !== undefined || input.stack !== undefined)) {
      throw new LullError("LULL_E_INVALID_ARGUMENT", "an operator token covers every guest: drop --guest/--stack");
    }
    const note = validate.text(input.note ?? "", "note", 200);
    const issued = issueSecret();
    const row = {
      id: issued.id,
      scope: input.kind === "operator" ? "operator" : stack ? "stack" : "guest",
      guest_id: guestId ?? null,
      stack: stack ?? null,
      secret_hash: issued.secretHash,
      note,
      created_at: now,
      expires_at: input.ttlMs === undefined ? null : now + input.ttlMs,
    };
    this.stmt.insert.run(row);
    return { token: issued.token, record: fromRow({ ...row, revoked_at: null }) };
  }

  list(): TokenRecord[] {
    return (this.stmt.all.all() as TokenRow[]).map(fromRow);
  }

  get(id: string): TokenRecord | undefined {
    const row = this.stmt.byId.get(validateTokenId(id)) as TokenRow | undefined;
    return row ? fromRow(row) : undefined;
  }

  /** Revokes a token; false when it was already revoked. Unknown ids throw. */
  revoke(id: string, now: number): boolean {
    if (!this.get(id)) throw new LullError("LULL_E_INVALID_ARGUMENT", `no token ${id}`);
    return this.stmt.revoke.run(now, id).changes === 1;
  }

  /** The principal a presented token stands for; throws TokenRefused (UNAUTHENTICATED) otherwise. */
  authenticate(token: string, now: number): Principal {
    const parsed = parseToken(token);
    if (!parsed) throw new TokenRefused("the bearer token is malformed");
    const row = this.stmt.byId.get(parsed.id) as TokenRow | undefined;
    // A missing row still costs one hash so an unknown id is not faster to refuse.
    if (!secretMatches(parsed.secret, row?.secret_hash ?? Buffer.alloc(32)) || !row) {
      throw new TokenRefused(`token ${parsed.id} is not valid`);
    }
    if (row.revoked_at !== null) throw new TokenRefused(`token ${row.id} was revoked`);
    if (row.expires_at !== null && row.expires_at <= now) throw new TokenRefused(`token ${row.id} has expired`);
    const record = fromRow(row);
    return record.kind === "operator"
      ? { kind: "operator", id: record.id, via: "token" }
      : { kind: "guest", id: record.id, guestId: record.guestId as string, stack: record.stack };
  }
}

