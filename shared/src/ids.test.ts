import { test } from "node:test";
import assert from "node:assert/strict";
import { validate } from "./ids.js";

const hostile = ["", "a b", "../etc", "x;rm -rf /", "$(id)", "`id`", "a\nb", "x".repeat(65), "-rf", "a|b", "a/b", "é"];

test("guest ids, stacks and job ids accept good values", () => {
  assert.equal(validate.guestId("101"), "101");
  assert.equal(validate.guestId("demo-app.1"), "demo-app.1");
  assert.equal(validate.stack("web_db-1"), "web_db-1");
  assert.equal(validate.jobId("j-0123456789abcdefghijklmnop"), "j-0123456789abcdefghijklmnop");
  assert.equal(validate.idempotencyKey("nightly:2026-11-22"), "nightly:2026-11-22");
});

test("hostile values are rejected with the field name", () => {
  for (const value of hostile) {
    assert.throws(() => validate.guestId(value), /guest_id/, JSON.stringify(value));
    assert.throws(() => validate.stack(value), /stack/, JSON.stringify(value));
    assert.throws(() => validate.jobId(value), /job_id/, JSON.stringify(value));
  }
  assert.throws(() => validate.idempotencyKey("has space"), /idempotency_key/);
  assert.throws(() => validate.text("a\u0000b", "reason", 10), /control characters/);
  assert.throws(() => validate.text("x".repeat(11), "reason", 10), /longer than 10/);
});
