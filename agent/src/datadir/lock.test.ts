// The data directory lock with real SQLite and real processes: a second holder is refused with the
// first one's pid, a holder killed with SIGKILL leaves nothing that blocks, and an owner file that
// names a live but unrelated process (pid reuse) blocks nothing either.
import { strict as assert } from "node:assert";
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { after, describe, it } from "node:test";
import { LullError } from "@lull/shared";
import { LOCK_OWNER_FILE, acquireDataDirLock, readLockOwner } from "./lock.js";
import { isSameProcessRunning, processStartTicks } from "./process-identity.js";

const dirs: string[] = [];
const children = new Set<ChildProcess>();
after(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  dirs.forEach((d) => rmSync(d, { recursive: true, force: true }));
});

function scratch(): string {
  const dir = mkdtempSync(join(tmpdir(), "lull-lock-"));
  dirs.push(dir);
  return dir;
}

function exited(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    else child.once("exit", () => resolve());
  });
}

/** Another process that takes the lock and holds it until killed; resolves once it holds it. */
async function holderProcess(dataDir: string): Promise<ChildProcess> {
  const lockModule = new URL("./lock.js", import.meta.url).href;
  const code = `import(${JSON.stringify(lockModule)}).then((m) => { m.acquireDataDirLock(${JSON.stringify(dataDir)}); console.log("locked"); setInterval(() => {}, 60000); });`;
  const child = spawn(process.execPath, ["--input-type=module", "-e", code], { stdio: ["ignore", "pipe", "inherit"] });
  children.add(child);
  await new Promise<void>((resolve, reject) => {
    createInterface({ input: child.stdout! }).on("line", (line) => line === "locked" && resolve());
    child.once("exit", (code, signal) => reject(new Error(`lock holder exited (${code ?? signal}) before it locked`)));
  });
  return child;
}

const isLocked = (dataDir: string, pidText: string) => (err: unknown) =>
  err instanceof LullError && err.code === "LULL_E_DATA_DIR_LOCKED" && err.message.includes(dataDir) && err.message.includes(pidText);

describe("data dir lock", () => {
  it("a second holder in the same process is refused, naming the directory and the holder's pid; release frees it", () => {
    const dir = scratch();
    const first = acquireDataDirLock(dir);
    assert.equal(readLockOwner(dir)?.pid, process.pid);
    assert.throws(() => acquireDataDirLock(dir), isLocked(dir, `pid ${process.pid},`));
    first.release();
    first.release();
    assert.equal(existsSync(join(dir, LOCK_OWNER_FILE)), false, "a clean release removes the owner file");
    const again = acquireDataDirLock(dir);
    again.release();
  });

  it("another process holding it is named; once it is killed with SIGKILL the lock is free at once", async () => {
    const dir = scratch();
    const holder = await holderProcess(dir);
    assert.throws(() => acquireDataDirLock(dir), isLocked(dir, `pid ${holder.pid},`));
    holder.kill("SIGKILL");
    await exited(holder);
    assert.equal(readLockOwner(dir)?.pid, holder.pid, "the killed holder's owner file is still there");
    const mine = acquireDataDirLock(dir);
    try {
      assert.equal(readLockOwner(dir)?.pid, process.pid, "the stale owner file was replaced");
    } finally {
      mine.release();
    }
  });

  it("an owner file naming a live, unrelated process (a reused pid) does not block", async () => {
    const dir = scratch();
    const unrelated = spawn("sleep", ["30"], { stdio: "ignore" });
    children.add(unrelated);
    const pid = unrelated.pid!;
    // As a crashed agent's file would read if the kernel had given its pid to `sleep` since.
    writeFileSync(join(dir, LOCK_OWNER_FILE), JSON.stringify({ pid, startTicks: "1", lockedAt: 1 }));
    assert.equal(isSameProcessRunning({ pid, startTicks: "1" }), false, "same pid, other start time: another process");
    const lock = acquireDataDirLock(dir);
    try {
      assert.equal(readLockOwner(dir)?.pid, process.pid);
    } finally {
      lock.release();
      unrelated.kill("SIGKILL");
      await exited(unrelated);
    }
  });
});

describe("process identity", () => {
  it("reads a live process's start time and nothing for a pid that does not exist", async () => {
    const ticks = processStartTicks(process.pid);
    assert.match(ticks ?? "", /^\d+$/);
    assert.equal(isSameProcessRunning({ pid: process.pid, startTicks: ticks }), true);
    const child = spawn("true", { stdio: "ignore" });
    await exited(child);
    assert.equal(processStartTicks(child.pid!), undefined, "an exited (and reaped) process has no /proc entry");
  });
});
