// Tests that need something of the machine (root, a loop-mounted btrfs, PostgreSQL) fail when it is
// missing, naming what is missing: they never skip. CI (`.ci/run`) runs as root and installs it.
import assert from "node:assert/strict";

/** Fails the test with a clear message when `unavailable` holds a reason. */
export function requireAvailable(what: string, unavailable: string | false | undefined): void {
  assert.ok(!unavailable, `this test needs ${what}, which this machine lacks: ${unavailable}. CI provides it (see .ci/run).`);
}
