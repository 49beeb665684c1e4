// The fuzz run (fuzz.ts) at 10,000 requests against a real lull-agent: every answer has an expected
// status, invalid credentials are always refused, guest tokens never reach beyond their guest, the
// agent stays up and still backs up, and the canary shows nothing from the requests reached a
// command line or the disk. The counts per status are printed (see `npm run fuzz`).
import assert from "node:assert/strict";
import { test } from "node:test";
import { checkReport } from "./fuzz-checks.js";
import { formatReport, runFuzz } from "./fuzz.js";

const REQUESTS = 10_000;

test(`${REQUESTS} random and malformed requests across every RPC, with every kind of credential`, { timeout: 280_000 }, async (t) => {
  const report = await runFuzz({ requests: REQUESTS, concurrency: 16 });
  for (const line of formatReport(report)) t.diagnostic(line);
  assert.deepEqual(checkReport(report, REQUESTS), [], `fuzz seed ${report.seed}`);
});
