import assert from "node:assert/strict";
import { test } from "node:test";
import { LullError } from "./errors.js";
import { normalizeFingerprint } from "./tls.js";

const HEX = "ab".repeat(32);

test("fingerprints normalize to sha256:AB:CD:… whatever their spelling", () => {
  const want = `sha256:${"AB:".repeat(31)}AB`;
  assert.equal(normalizeFingerprint(HEX), want);
  assert.equal(normalizeFingerprint(`sha256:${HEX}`), want);
  assert.equal(normalizeFingerprint(want.toLowerCase()), want);
  assert.equal(normalizeFingerprint(`  ${want}  `), want);
});

test("anything else is a config error that names the field", () => {
  for (const bad of ["", "sha256:", HEX.slice(2), `${HEX}ab`, `md5:${HEX}`, `sha256:${HEX.replace("a", "g")}`]) {
    assert.throws(
      () => normalizeFingerprint(bad, "agent.tls.fingerprint"),
      (err: unknown) => err instanceof LullError && err.code === "LULL_E_CONFIG_INVALID" && /^agent\.tls\.fingerprint:/.test(err.message),
      bad,
    );
  }
});
