// For tests: the LullError a promise rejects with (fails the test when it resolves, or rejects with anything else).
import assert from "node:assert/strict";
import { LullError } from "../errors.js";

export async function rejection(promise: Promise<unknown>): Promise<LullError> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof LullError, `expected a LullError, got ${String(err)}`);
    return err;
  }
  return assert.fail("expected the command to fail");
}
