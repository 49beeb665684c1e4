// The job's archive throughput: the files' bytes over the archive phase, once it has a duration.
import assert from "node:assert/strict";
import { it } from "node:test";
import { QuiescePolicy } from "@lull/proto";
import { archiveMbPerS, newJobRecord, toApiJob } from "./job.js";

it("a job that archived reports MB/s (10^6 bytes); one that did not, none", () => {
  const job = newJobRecord({ id: `j-${"1".repeat(26)}`, guestId: "g", engine: "native", policy: QuiescePolicy.QUIESCE_POLICY_FAIL, idempotencyKey: "k", quiesceTimeoutMs: 1000, requestedBy: "", now: 0 });
  assert.equal(toApiJob(job).archiveMbPerS, undefined);
  const archived = { ...job, archiveMs: 4000, bytesTotal: 1_000_000_000, bytesDone: 1_000_000_000 };
  assert.equal(toApiJob(archived).archiveMbPerS, 250);
  assert.equal(archiveMbPerS({ archiveMs: 2000, bytesTotal: 300_000_000, bytesDone: 150_000_000 }), 75, "a run cut short counts what it read");
  assert.equal(archiveMbPerS({ archiveMs: 0, bytesTotal: 10, bytesDone: 10 }), undefined);
});
