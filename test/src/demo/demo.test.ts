// `npm run demo` end to end: real agent, controller, app and lullctl processes on this machine.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { test } from "node:test";
import { ENTRY_POINTS } from "../support/index.js";

const DEMO = ENTRY_POINTS.demoApp.replace(/app\.js$/, "main.js");

function runDemo(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [DEMO, ...args], { timeout: 180_000, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === "number" ? err.code : -1) : 0, stdout, stderr });
    });
  });
}

test("the demo backs up a running app with an early resume and restores exactly the records before the snapshot", async () => {
  const { code, stdout, stderr } = await runDemo(["--data-mib", "32"]);
  assert.equal(code, 0, `demo failed:\n${stdout}\n${stderr}`);

  const phaseLines = stdout.split("\n").map((l) => /^\s+\+\d+\.\d{3}s  (\w+)/.exec(l)?.[1]).filter((p): p is string => p !== undefined);
  const order = ["quiescing", "snapshotted", "done"].map((p) => phaseLines.indexOf(p));
  assert.ok(order.every((i) => i >= 0), `phases missing from lullctl's output: ${phaseLines.join(", ")}`);
  assert.deepEqual([...order].sort((a, b) => a - b), order, `phases out of order: ${phaseLines.join(", ")}`);
  assert.equal(phaseLines.filter((p) => p === "done").length, 1, "done appears once");

  assert.match(stdout, /^downtime {5}app: .* \(resumed early, at snapshotted\)$/m, "lullctl reports an early resume");
  assert.match(stdout, /^demo: downtime of stack app: \d+ ms \(stop \d+ ms \+ start \d+ ms, resumed early, at snapshotted\)$/m);
  assert.match(stdout, /PASS {2}the app was resumed early, at snapshotted, before the archive was finished/);
  assert.match(stdout, /PASS {2}lullctl restore --to exited 0/);
  assert.match(stdout, /restore r-\S+ {2}point b-\S+ {2}to \S+ {2}done/, "lullctl restore's own summary");
  assert.match(stdout, /PASS {2}no record written after the snapshot is in the backup/);
  assert.match(stdout, /PASS {2}every record written before the stop is in the backup/);
  assert.match(stdout, /PASS {2}the restore point passes the app.s check on an ephemeral replica/);
  assert.match(stdout, /passed/);
  assert.doesNotMatch(stdout, /FAIL/);
  assert.match(stdout, /^demo: all checks passed$/m);
  const scratch = /^demo: scratch dir: (\S+)$/m.exec(stdout)?.[1];
  assert.ok(scratch, "the demo prints its scratch dir");
  assert.equal(existsSync(scratch), false, "the scratch dir is removed after a passing run");
});
