// A restore in place end to end: a real lull-agent, the demo app as the guest's stack under its
// real lull-controller, real tar/zstd. After a backup the app goes on writing; `lullctl restore
// --in-place` then brings the volume back to the point: the records written after the backup are
// gone, the ones of the point are there byte for byte, and the app runs again, continuing from the
// point. The stack was held stopped by its controller through the restore's job (kind restore)
// and started again only at its end; it was down for the replacement only, not for the extraction.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { Phase, StackState } from "@lull/proto";
import { restoreArchive } from "../demo/restore-check.js";
import { readRecords, recordsFile } from "../demo/records.js";
import { ENTRY_POINTS, Site, awaitConvergence, makeTempDir, readResumedLog, removeDir, sleep, waitFor } from "../support/index.js";

function lullctl(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [ENTRY_POINTS.lullctl, ...args], { timeout: 120_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === "number" ? err.code : -1) : 0, stdout, stderr });
    });
  });
}

test("restore in place: the controller holds the stack stopped while its volume is replaced, then starts it on the point's data", async () => {
  const site = await Site.start({ guests: [{ id: "g1", storage: "dir-copy", stacks: [{ name: "app", resume: "early" }], seedBytes: 24 * 1024 ** 2 }] });
  const scratch = await makeTempDir("lull-inplace-check-");
  try {
    const client = site.agent.client();
    const stack = site.stack("g1", "app");
    const socket = ["--socket", site.agent.socketPath];
    await sleep(400);
    const { job: started } = await client.startBackup("g1");
    const backup = await client.waitForEnd("g1", started!.id, 120_000);
    assert.equal(backup.phase, Phase.PHASE_DONE, `${backup.errorCode} ${backup.errorMessage}`);
    await stack.controller!.proc.waitForLog((l) => l.msg === "backup done" && l.jobId === backup.id, 15_000);
    // The point's records, from its archive.
    await restoreArchive(backup.archivePath, join(scratch, "point"));
    const pointRecords = readRecords(recordsFile(join(scratch, "point", "app")));
    assert.ok(pointRecords.length > 0, "the point holds records");
    // The app goes on: records the restore must take away.
    await waitFor("records after the backup", () => readRecords(recordsFile(stack.dataDir)).length > pointRecords.length + 5, 15_000, 100);
    const newest = readRecords(recordsFile(stack.dataDir)).at(-1)!;

    const points = JSON.parse((await lullctl([...socket, "--json", "backups", "g1"])).stdout) as { backups: Array<{ id: string }> };
    const pointId = points.backups[0]!.id;
    const mark = stack.controller!.proc.mark();
    const r = await lullctl([...socket, "restore", "g1", pointId, "--in-place", "--wait"]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /holding/);
    assert.match(r.stdout, /to guest g1's volumes \(job j-\S+\) {2}done/);

    // The hold: a job of kind restore, the stack stopped and acknowledged, resumed at its end.
    const restores = JSON.parse((await lullctl([...socket, "--json", "restores", "g1"])).stdout) as { restores: Array<{ target: string; phase: string; extractMs: number }> };
    const holdJobId = restores.restores[0]!.target;
    const hold = await client.getJob("g1", holdJobId);
    assert.equal(hold.kind, "restore");
    assert.equal(hold.phase, Phase.PHASE_DONE);
    assert.equal(hold.stacks[0]?.state, StackState.STACK_STATE_RESUMED);
    assert.equal(hold.stacks[0]?.resumedEarly, false, "held to the end");
    const resumed = await stack.controller!.proc.waitForLog((l) => l.msg === "stack resumed" && l.jobId === holdJobId, 15_000, mark);
    assert.equal(readResumedLog(resumed).early, false);
    assert.ok(hold.stacks[0]!.acknowledgedAt!.getTime() >= hold.createdAt!.getTime() + restores.restores[0]!.extractMs - 50, "stopped only after the extraction beside the volume");

    // The data: the point's records, then the app's new ones; nothing of what it wrote after the backup.
    await waitFor("the app writes again", () => (readRecords(recordsFile(stack.dataDir)).at(-1)?.at ?? 0) > newest.at, 20_000, 100);
    const after = readRecords(recordsFile(stack.dataDir));
    assert.deepEqual(after.slice(0, pointRecords.length), pointRecords, "the point's records come first, unchanged");
    const lost = after.filter((x) => x.at > pointRecords.at(-1)!.at && x.at <= newest.at);
    assert.deepEqual(lost, [], "no record written between the backup and the restore survives it");
    assert.equal(after[pointRecords.length]?.id, pointRecords.at(-1)!.id + 1, "the app continues from the point");
    // Causal, not timed: the controller starts the stack only once it has seen the hold job end, and
    // the agent stamps finishedAt in the transaction that ends it (same clock as the app's records).
    // (The stack's resumedAt is when the agent heard of the resume: under load that can come after
    // the app's first record.)
    assert.ok(after[pointRecords.length]!.at >= hold.finishedAt!.getTime(), "its new records come after the hold job ended");
    const seedFile = join("attachments", "seed-000", "file-00000.bin");
    assert.deepEqual(await readFile(join(stack.dataDir, seedFile)), await readFile(join(scratch, "point", "app", seedFile)), "bulk data as in the point");

    const jobs = (await client.listJobs("g1")).map((j) => ({ guestId: "g1", jobId: j.id }));
    const report = await awaitConvergence(site, { jobs, sinceMs: 0, followers: [], timeoutMs: 15_000 });
    assert.deepEqual(report.problems, [], "nothing is left behind");
  } finally {
    await site.teardown();
    await removeDir(scratch);
  }
});
