import assert from "node:assert/strict";
import { test } from "node:test";
import { LullError } from "@lull/shared";
import { parseInvocation } from "./args.js";
import { clusterExit } from "./commands/cluster.js";

const usage = (why: RegExp) => (err: unknown) => err instanceof LullError && err.code === "LULL_E_INVALID_ARGUMENT" && why.test(err.message);

test("--cluster goes with jobs, backups, schedules and events, and --node-timeout with --cluster", () => {
  assert.equal(parseInvocation(["--cluster", "jobs", "--active"]).cluster, true);
  assert.equal(parseInvocation(["events", "--follow", "--cluster", "--node-timeout", "2000"]).nodeTimeoutMs, 2000);
  assert.equal(parseInvocation(["backups", "101", "--cluster"]).command.name, "backups");
  assert.equal(parseInvocation(["schedules", "--cluster"]).cluster, true);
  assert.equal(parseInvocation(["jobs"]).cluster, undefined, "no --cluster: the invocation is as before");
  assert.throws(() => parseInvocation(["--cluster", "backup", "101"]), usage(/--cluster goes with jobs, backups, schedules, events, not backup/));
  assert.throws(() => parseInvocation(["jobs", "--node-timeout", "100"]), usage(/--node-timeout goes with --cluster/));
  assert.throws(() => parseInvocation(["--cluster", "--agent", "10.0.0.1:7450", "jobs"]), usage(/not with --agent/));
});

test("--cluster refuses the options that name one node's state", () => {
  assert.throws(() => parseInvocation(["--cluster", "jobs", "--page", "abc"]), usage(/--page is not supported/));
  assert.throws(() => parseInvocation(["--cluster", "events", "--after", "4"]), usage(/--after is not supported \(sequence numbers are per node/));
  assert.throws(() => parseInvocation(["--cluster", "events", "--job", "j-01jzzzzzzzzzzzzzzzzzzzzzzz"]), usage(/--job is not supported/));
  assert.throws(() => parseInvocation(["--cluster", "events", "--group", "g-x"]), usage(/--group|group run id/));
});

test("the exit code says whether every node answered", () => {
  assert.equal(clusterExit(3, 3), 0);
  assert.equal(clusterExit(2, 3), 4);
  assert.equal(clusterExit(0, 3), 1);
});
