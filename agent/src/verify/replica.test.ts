// The replica sweep after an agent crash: a process still writing into a replica (an orphaned
// extractor carries the replica's mark) is killed and the replica removed; a replica that cannot be
// torn down is reported with its error while the others are torn down still — the sweep never
// throws, so one resisting scratch copy cannot keep the agent from starting. The extraction
// itself carries the mark.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { createRecordingRunner } from "@lull/shared/testing";
import { createReplica, REPLICA_ENV, replicaProcesses, sweepReplicas } from "./replica.js";
import { replicaRestorer } from "./restore.js";

const dirs: string[] = [];
const writers: number[] = [];
after(() => {
  // A failed assertion before the sweep leaves the writer running: stop it before removing its dir.
  for (const pid of writers) {
    try {
      process.kill(-pid, "SIGKILL");
    } catch {
      // already gone (the sweep killed it)
    }
  }
  dirs.forEach((d) => rmSync(d, { recursive: true, force: true }));
});

const state = (runId: string) => ({ runId, pointId: "b-1", guestId: "g1", port: 55400, createdAt: Date.now() });

describe("replica sweep", () => {
  it("kills a writer still filling a replica, removes it, and reports one it cannot tear down without throwing", async () => {
    const scratch = mkdtempSync(join(tmpdir(), "lull-replica-sweep-"));
    dirs.push(scratch);
    const a = await createReplica(scratch, "lull-", state("a"));
    const b = await createReplica(scratch, "lull-", state("b"));
    // An orphaned extractor: goes on creating files below the replica's root until killed.
    const writer = spawn("/bin/sh", ["-c", `i=0; while :; do mkdir -p "${a.root}/d$i" && : > "${a.root}/d$i/f"; i=$((i+1)); done`], {
      detached: true,
      stdio: "ignore",
      env: { ...process.env, [REPLICA_ENV]: a.dir },
    });
    writer.unref();
    writers.push(writer.pid!);
    await new Promise((r) => setTimeout(r, 200));
    // The writer, and maybe the `mkdir` it has just forked (it inherits the mark).
    const found = await replicaProcesses(a.dir);
    assert.ok(found.includes(writer.pid!) && found.length <= 2, `the writer is found by its mark: ${found.join(", ")}`);
    // Replica b has something mounted below it whose unmount fails.
    const mounts = join(scratch, "mounts");
    writeFileSync(mounts, `/dev/loop9 ${join(b.root, "db")} btrfs rw 0 0\n`);
    const runner = createRecordingRunner({ reply: (call) => (call.file === "umount" ? { exitCode: 32, stdout: "", stderr: "umount: target is busy." } : undefined) });

    const reports = await sweepReplicas(scratch, "lull-", { runner, mountsFile: mounts });
    const ra = reports.find((r) => r.dir === a.dir)!;
    const rb = reports.find((r) => r.dir === b.dir)!;
    assert.deepEqual([ra.error, ra.removed], [undefined, true]);
    // The writer, and maybe the `mkdir` it had just forked (it carries the mark too).
    assert.ok(ra.killed.includes(writer.pid!), `the writer was killed: ${ra.killed.join(", ")}`);
    assert.ok(ra.killed.length <= 2, `only marked processes: ${ra.killed.join(", ")}`);
    assert.equal(existsSync(a.dir), false);
    assert.match(rb.error ?? "", /umount|busy/, "b's failure is reported, not thrown");
  });

  it("the extraction of a native point carries the replica's mark", async () => {
    const scratch = mkdtempSync(join(tmpdir(), "lull-replica-mark-"));
    dirs.push(scratch);
    const replica = await createReplica(scratch, "lull-", state("m"));
    const calls: Array<{ location: string; target: string; env: Readonly<Record<string, string>> }> = [];
    const restore = replicaRestorer({
      extractNative: async (point, target, _signal, env) => {
        calls.push({ location: point.location, target, env });
      },
    });
    await restore({ locationKind: "native-archive", location: "/srv/archives/g1/b-1.tar.zst", id: "b-1" } as never, replica, new AbortController().signal);
    assert.deepEqual(calls, [{ location: "/srv/archives/g1/b-1.tar.zst", target: replica.root, env: { [REPLICA_ENV]: replica.dir } }]);
  });
});
