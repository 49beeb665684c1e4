// The crash matrix in CI: `matrix.js --iterations 8` with a fixed seed (agent failpoints in
// quiescing, archiving and snapshotted, controller failpoints after-stop and before-resume, and
// random kills of the agent, of one controller and of everything), bounded to a few minutes.
// The full run is `npm run crash-matrix -- --iterations 200`.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { test } from "node:test";

const MATRIX = fileURLToPath(new URL("./matrix.js", import.meta.url));

test("crash matrix, 8 iterations: every stack resumed, no leak, no stuck job, every watcher told", async () => {
  const { code, stdout, stderr } = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    execFile(process.execPath, [MATRIX, "--iterations", "8", "--seed", "20261122"], { timeout: 240_000, maxBuffer: 16 * 1024 ** 2 }, (err, out, errOut) => {
      resolve({ code: err ? (typeof err.code === "number" ? err.code : -1) : 0, stdout: out, stderr: errOut });
    });
  });
  assert.equal(code, 0, `the matrix failed:\n${stdout}\n${stderr}`);
  const figure = (label: string) => Number(new RegExp(`^  ${label} +(\\d+)$`, "m").exec(stdout)?.[1]);
  assert.equal(figure("runs"), 8);
  assert.equal(figure("jobs"), 24, "three guests backed up in every iteration");
  assert.ok(figure("stacks stopped") > 0);
  assert.equal(figure("stacks resumed"), figure("stacks stopped"));
  for (const label of ["leaks", "stuck jobs", "not-resumed", "marker", "double-stop", "untold", "dishonest", "late-resume"]) {
    assert.equal(figure(label), 0, `${label}:\n${stdout}`);
  }
  assert.match(stdout, /^ {2}failed@\w+:LULL_E_AGENT_RESTARTED +\d+$/m, "agent crashes end jobs as failed, honestly");
  assert.match(stdout, /^result: PASS$/m);
});
