// Bearer tokens: `lull_<id>_<secret>`. The id (12 × [0-9a-z]) is public and names the row the
// agent looks up; the secret (32 random bytes, base64url) is shown once and stored only as its
// SHA-256 — it is high-entropy, so a slow hash adds nothing — and compared in constant time.
import { createHash, randomBytes, randomInt, timingSafeEqual } from "node:crypto";
import { LullError, TOKEN_PATTERN } from "@lull/shared";

export const TOKEN_PREFIX = "lull_";
export const TOKEN_ID = /^[0-9a-z]{12}$/;
const ID_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz";

export interface IssuedSecret {
  id: string;
  /** The whole bearer token: shown once, never stored. */
  token: string;
  secretHash: Buffer;
}

export function hashSecret(secret: string): Buffer {
  return createHash("sha256").update(secret, "utf8").digest();
}

/** A new token id and secret. */
export function issueSecret(): IssuedSecret {
  let id = "";
  for (let i = 0; i < 12; i++) id += ID_ALPHABET[randomInt(ID_ALPHABET.length)];
  const secret = randomBytes(32).toString("base64url");
  return { id, token: `${TOKEN_PREFIX}${id}_${secret}`, secretHash: hashSecret(secret) };
}

/** The id and secret of a presented token, or undefined when it is not shaped like one. */
export function parseToken(token: string): { id: string; secret: string } | undefined {
  const m = TOKEN_PATTERN.exec(token);
  return m ? { id: m[1] as string, secret: m[2] as string } : undefined;
}

/** Constant-time comparison of a presented secret with the stored hash. */
export function secretMatches(secret: string, stored: Buffer): boolean {
  const presented = hashSecret(secret);
  return stored.length === presented.length && timingSafeEqual(presented, stored);
}

export function validateTokenId(value: string): string {
  if (!TOKEN_ID.test(value)) throw new LullError("LULL_E_INVALID_ARGUMENT", `token id must be 12 characters of [0-9a-z]`);
  return value;
}

const UNITS: Record<string, number> = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

/** `90d`, `12h`, `30m`, `2w`, `45s` → milliseconds; at least a minute, at most ten years. */
export function parseDuration(value: string, field = "--ttl"): number {
  const m = /^(\d{1,6})([smhdw])$/.exec(value);
  const ms = m ? Number(m[1]) * (UNITS[m[2] as string] as number) : NaN;
  if (!Number.isFinite(ms) || ms < 60_000 || ms > 3_650 * 86_400_000) {
    throw new LullError("LULL_E_INVALID_ARGUMENT", `${field} must be a duration like 90d, 12h or 30m (1 minute to 10 years), got "${value}"`);
  }
  return ms;
}
