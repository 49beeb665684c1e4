import assert from "node:assert/strict";
import { test } from "node:test";
import { LullError } from "@lull/shared";
import { hashSecret, issueSecret, parseDuration, parseToken, secretMatches } from "./token.js";

test("a token is lull_<id>_<secret>; only the SHA-256 of the secret is kept", () => {
  const issued = issueSecret();
  assert.match(issued.token, /^lull_[0-9a-z]{12}_[A-Za-z0-9_-]{43}$/);
  const parsed = parseToken(issued.token);
  assert.ok(parsed);
  assert.equal(parsed.id, issued.id);
  assert.ok(!issued.secretHash.toString("hex").includes(Buffer.from(parsed.secret).toString("hex")));
  assert.deepEqual(issued.secretHash, hashSecret(parsed.secret));
  assert.ok(secretMatches(parsed.secret, issued.secretHash));
  assert.ok(!secretMatches(`${parsed.secret.slice(0, -1)}A`, issued.secretHash) || parsed.secret.endsWith("A"));
  assert.notEqual(issueSecret().token, issued.token);
});

test("anything not shaped like a token does not parse", () => {
  const good = issueSecret().token;
  for (const bad of ["", "lull_", good.slice(0, -1), `${good}x`, good.replace("lull_", "lul_"), good.toUpperCase(), `Bearer ${good}`, `${good}\n`]) {
    assert.equal(parseToken(bad), undefined, bad);
  }
});

test("durations: 90d, 12h, 30m, 2w; less than a minute or more than ten years is refused", () => {
  assert.equal(parseDuration("90d"), 90 * 86_400_000);
  assert.equal(parseDuration("12h"), 12 * 3_600_000);
  assert.equal(parseDuration("30m"), 30 * 60_000);
  assert.equal(parseDuration("2w"), 14 * 86_400_000);
  for (const bad of ["", "90", "d", "-1d", "1.5d", "30s", "3651d", "1y", "90d;rm -rf /"]) {
    assert.throws(() => parseDuration(bad), (e: unknown) => e instanceof LullError && e.code === "LULL_E_INVALID_ARGUMENT", bad);
  }
});
