// What a fuzz run must show, as a list of failures (empty: it passed). Used by the test and the script.
import type { FuzzReport } from "./fuzz.js";

export function checkReport(r: FuzzReport, minRequests: number): string[] {
  const failures: string[] = [];
  const fail = (ok: boolean, what: string) => {
    if (!ok) failures.push(what);
  };
  fail(r.requests >= minRequests, `only ${r.requests} of ${minRequests} requests were answered`);
  fail(r.unexpected.length === 0, `${r.unexpected.length} answers with an unexpected status, e.g. ${r.unexpected[0]}`);
  fail(r.authFailures.length === 0, `${r.authFailures.length} calls with invalid credentials were not refused, e.g. ${r.authFailures[0]}`);
  fail(r.scopeLeaks.length === 0, `${r.scopeLeaks.length} guest-scope leaks, e.g. ${r.scopeLeaks[0]}`);
  for (const s of ["UNAUTHENTICATED", "PERMISSION_DENIED", "INVALID_ARGUMENT", "RESOURCE_EXHAUSTED", "NOT_FOUND", "OK"]) {
    fail((r.byStatus[s] ?? 0) > 0, `no ${s} answer at all: the run did not exercise that path`);
  }
  fail(r.aliveAfterFuzz, "the agent died during the fuzz");
  fail(r.health === "SERVING", `health after the fuzz: ${r.health}`);
  fail(r.finalBackup === "done", `a backup after the fuzz: ${r.finalBackup}`);
  fail(r.exit?.code === 0, `the agent did not exit 0 on SIGTERM: ${JSON.stringify(r.exit)}`);
  fail(r.commands.problems.length === 0, `${r.commands.problems.length} suspicious commands, e.g. ${r.commands.problems[0]}`);
  fail((r.commands.byProgram.tar ?? 0) > 0, "no archive was written (tar never ran): the canary saw nothing");
  fail(r.disk.sentinel.length === 0, `sentinel files: ${r.disk.sentinel.join(", ")}`);
  fail(r.disk.marked.length === 0, `paths with the fuzz marker: ${r.disk.marked.slice(0, 5).join(", ")}`);
  fail(r.disk.outsideRoots.length === 0, `changes outside the agent's roots: ${r.disk.outsideRoots.slice(0, 5).join(", ")}`);
  fail(r.disk.tmp.length === 0, `new marked entries in the temp dir: ${r.disk.tmp.join(", ")}`);
  return failures;
}
