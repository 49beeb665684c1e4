// End to end with real processes: a stack its operator stopped before the backup is left as it was
// found. Its controller acknowledges it as already stopped (LEFT_STOPPED) without running a stop,
// the backup goes on app-consistent with the other stack stopped and resumed as usual, and at the
// end the stopped stack is still stopped: Lull never starts what it did not stop.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { test } from "node:test";
import { Consistency, Phase, StackState } from "@lull/proto";
import { ENTRY_POINTS, Site, countInvocations, waitFor } from "../support/index.js";

function run(file: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(file, args, { timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === "number" ? err.code : -1) : 0, stdout, stderr });
    });
  });
}

test("a stack stopped by its operator before the backup stays stopped; the other stack is stopped and resumed as usual", async () => {
  const site = await Site.start({ guests: [{ id: "g1", storage: "dir-copy", stacks: ["app", "db"], seedBytes: 4 * 1024 ** 2 }] });
  try {
    const [app, db] = [site.stack("g1", "app"), site.stack("g1", "db")];
    // The operator stops db by hand (maintenance), around Lull.
    const stopped = await run(process.execPath, [ENTRY_POINTS.demoAppCtl, "stop", db.dataDir]);
    assert.equal(stopped.code, 0, stopped.stderr);
    await waitFor("db stopped", async () => (await db.status()) === "stopped", 10_000);
    const since = Date.now();

    const { job: started } = await site.agent.client().startBackup("g1");
    const ended = await site.agent.client().waitForEnd("g1", started!.id, 60_000);
    assert.equal(ended.phase, Phase.PHASE_DONE, `${ended.errorCode} ${ended.errorMessage}`);
    await app.controller!.proc.waitForLog((l) => l.msg === "stack resumed" && l.jobId === ended.id, 15_000);
    const job = await waitFor("app's resume reported", async () => {
      const j = await site.agent.client().getJob("g1", ended.id);
      return j.stacks.find((s) => s.stack === "app")?.state === StackState.STACK_STATE_RESUMED ? j : undefined;
    }, 15_000);

    assert.equal(job.consistency, Consistency.CONSISTENCY_APP, "a stopped stack is as quiet as a quiesced one");
    const dbEntry = job.stacks.find((s) => s.stack === "db");
    assert.equal(dbEntry?.state, StackState.STACK_STATE_LEFT_STOPPED);
    assert.match(dbEntry?.reason ?? "", /already stopped when the backup began/);
    assert.equal(job.stacks.find((s) => s.stack === "app")?.resumedEarly, true);

    assert.equal(await db.status(), "stopped", "db is still stopped after the backup");
    assert.equal(await app.status(), "running");
    assert.equal(countInvocations(db.ledgerEntries(), "stop", since) + countInvocations(db.ledgerEntries(), "start", since), 0, "no stop or start ran for db");
    assert.equal(countInvocations(app.ledgerEntries(), "stop", since), 1);
    assert.equal(countInvocations(app.ledgerEntries(), "start", since), 1);
    assert.equal(db.markerPresent(), false);
    await db.controller!.proc.waitForLog((l) => l.msg === "backup done" && l.jobId === job.id, 15_000);

    const shown = await run(process.execPath, [ENTRY_POINTS.lullctl, "--socket", site.agent.socketPath, "job", "g1", job.id]);
    assert.equal(shown.code, 0, shown.stderr);
    assert.match(shown.stdout, /db.*left stopped: it was already stopped when the backup began/);
  } finally {
    await site.teardown();
  }
});
