// The harness itself: log capture and waiting, stop and kill -9, and the loop-mounted btrfs.
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { loopBtrfsUnavailable, mountLoopBtrfs } from "./btrfs.js";
import { isPidAlive, startProcess } from "./process.js";
import { makeTempDir, removeDir } from "./temp.js";
import { requireAvailable } from "./require.js";
import { Job, Phase } from "@lull/proto";
import { dishonestyOf } from "./convergence.js";

const CHATTY = `
let n = 0;
console.log("not json");
const t = setInterval(() => console.log(JSON.stringify({ level: "info", msg: "tick", n: ++n })), 20);
process.on("SIGTERM", () => { clearInterval(t); console.log(JSON.stringify({ msg: "bye", n })); process.exit(0); });
`;

test("a child's JSON log lines are captured, awaited by predicate, and it stops on SIGTERM", async () => {
  const proc = startProcess({ name: "chatty", args: ["-e", CHATTY] });
  const third = await proc.waitForLog((l) => l.msg === "tick" && l.n === 3, 5_000);
  assert.equal(third.level, "info");
  const mark = proc.mark();
  const later = await proc.waitForLog((l) => l.msg === "tick", 5_000, mark);
  assert.ok((later.n as number) > 3);
  assert.deepEqual(proc.plainLines, ["not json"]);
  await assert.rejects(proc.waitForExit(100), /chatty did not exit within 100 ms/);
  const status = await proc.stop(5_000);
  assert.deepEqual(status, { code: 0, signal: null });
  assert.equal(proc.logsWithMsg("bye").length, 1);
  await assert.rejects(proc.waitForLog((l) => l.msg === "never", 5_000), /chatty exited \(0\) before the awaited log line/);
});

test("kill9 ends a process that ignores SIGTERM; a missing log line times out with the output", async () => {
  const proc = startProcess({ name: "stubborn", args: ["-e", `process.on("SIGTERM", () => {}); console.log("up"); setInterval(() => {}, 1000);`] });
  try {
    // Wait until the child printed its line (a loaded machine can take longer than the short window to start node).
    for (const until = Date.now() + 30_000; !proc.plainLines.includes("up") && Date.now() < until; ) await new Promise((r) => setTimeout(r, 20));
    await assert.rejects(proc.waitForLog((l) => l.msg === "never", 300), /stubborn: no matching log line within 300 ms; output:\nup/);
    assert.equal(isPidAlive(proc.pid), true);
  } finally {
    const status = await proc.kill9();
    assert.equal(status.signal, "SIGKILL");
    assert.equal(isPidAlive(proc.pid), false);
  }
});

test("a loop-mounted btrfs gives real subvolumes and tears down cleanly", async (t) => {
  const why = await loopBtrfsUnavailable();
  requireAvailable("a loop-mounted btrfs (root, btrfs-progs)", why);
  const dir = await makeTempDir("lull-btrfs-test-");
  const fs = await mountLoopBtrfs({ dir, sizeBytes: 256 * 1024 ** 2 });
  try {
    const vol = await fs.createSubvolume("vol");
    await writeFile(join(vol, "hello.txt"), "hello");
    assert.equal(await readFile(join(vol, "hello.txt"), "utf8"), "hello");
    assert.deepEqual(await fs.listSubvolumes(), [vol]);
  } finally {
    await fs.teardown();
    await fs.teardown();
    await removeDir(dir);
  }
  assert.equal(existsSync(fs.image), false);
});

test("an honest outcome: a failed job may name an archive only after an agent restart, and only when it is there whole", async () => {
  const dir = await makeTempDir("lull-honest-");
  try {
    const archivePath = join(dir, "a.tar.zst");
    await writeFile(archivePath, "12345");
    const failed = Job.fromPartial({ phase: Phase.PHASE_FAILED, failedIn: Phase.PHASE_ARCHIVING, errorCode: "LULL_E_AGENT_RESTARTED", archivePath, archiveBytes: 5 });
    assert.equal(dishonestyOf(failed), undefined);
    assert.match(dishonestyOf({ ...failed, errorCode: "LULL_E_ARCHIVE_FAILED" }) ?? "", /failed but names an archive/);
    assert.match(dishonestyOf({ ...failed, archiveBytes: 9 }) ?? "", /not there whole/);
    assert.match(dishonestyOf({ ...failed, archivePath: join(dir, "gone.tar.zst") }) ?? "", /not there whole/);
    assert.equal(dishonestyOf({ ...failed, archivePath: "", archiveBytes: 0 }), undefined);
  } finally {
    await removeDir(dir);
  }
});
