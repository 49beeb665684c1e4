// Asserts that a promise rejects with a LullError of a given code whose message matches.
import assert from "node:assert/strict";
import { LullError } from "@lull/shared";

export async function rejectsWith(p: Promise<unknown>, code: string, pattern: RegExp): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof LullError, String(err));
    assert.equal(err.code, code);
    assert.match(err.message, pattern);
    return true;
  });
}
