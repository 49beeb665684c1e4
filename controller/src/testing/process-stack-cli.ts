#!/usr/bin/env node
// A real "stack" for tests, driven by the command driver:
//   node process-stack-cli.js start|stop|status|alive <dir> [<marker file>]
// `start` spawns a detached long-running node process (the app) and writes <dir>/app.pid;
// `stop` kills it and waits until it is gone; `status` exits 0 while it runs, 3 otherwise;
// `alive` is `status` for the test itself (no fault applies).
// Every call appends a JSON line to <dir>/events.log: {op, at, ok, markerPresent}. `markerPresent`
// records whether the marker file existed when the command ran (the marker-before-stop ordering).
// Faults (files in <dir>): fail-stop, fail-start (exit 1 without acting), slow-stop / slow-start
// (milliseconds to wait first), start-dies (the app exits right after being spawned), fail-status
// (`status` exits 1 with an error on stderr, as `pg_ctl status` run as root does).
import { spawn } from "node:child_process";
import { appendFileSync, existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const [op, dir, markerFile] = process.argv.slice(2);
if (!op || !dir) {
  process.stderr.write("usage: process-stack-cli start|stop|status|alive <dir> [<marker file>]\n");
  process.exit(2);
}
const pidFile = join(dir, "app.pid");
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function record(ok: boolean): void {
  const line = { op, at: Date.now(), ok, markerPresent: markerFile ? existsSync(markerFile) : null };
  appendFileSync(join(dir!, "events.log"), `${JSON.stringify(line)}\n`);
}

function alivePid(): number | undefined {
  if (!existsSync(pidFile)) return undefined;
  const pid = Number(readFileSync(pidFile, "utf8"));
  try {
    process.kill(pid, 0);
  } catch {
    return undefined;
  }
  // A killed orphan stays a zombie until init reaps it; it no longer runs.
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    if (stat.slice(stat.lastIndexOf(")") + 2).startsWith("Z")) return undefined;
  } catch {
    return undefined;
  }
  return pid;
}

async function fault(name: string): Promise<boolean> {
  const file = join(dir!, name);
  if (!existsSync(file)) return false;
  const ms = Number(readFileSync(file, "utf8").trim());
  if (name.startsWith("slow-")) await sleep(Number.isFinite(ms) && ms > 0 ? ms : 1000);
  return true;
}

async function main(): Promise<number> {
  switch (op) {
    case "status":
      if (await fault("fail-status")) {
        process.stderr.write("status failed: injected fault\n");
        return 1;
      }
      return alivePid() !== undefined ? 0 : 3;
    case "alive":
      return alivePid() !== undefined ? 0 : 3;
    case "start": {
      await fault("slow-start");
      if (await fault("fail-start")) {
        record(false);
        process.stderr.write("start failed: injected fault\n");
        return 1;
      }
      if (alivePid() === undefined && existsSync(join(dir!, "start-dies"))) {
        // An app that crashes while starting: it is gone by the time `start` returns.
        const child = spawn(process.execPath, ["-e", "process.exit(1)"], { stdio: "ignore" });
        await new Promise((resolve) => child.on("exit", resolve));
        writeFileSync(pidFile, String(child.pid));
      } else if (alivePid() === undefined) {
        const child = spawn(process.execPath, ["-e", "setInterval(() => {}, 3600000)"], { detached: true, stdio: "ignore" });
        child.unref();
        writeFileSync(pidFile, String(child.pid));
      }
      record(true);
      return 0;
    }
    case "stop": {
      await fault("slow-stop");
      if (await fault("fail-stop")) {
        record(false);
        process.stderr.write("stop failed: injected fault\n");
        return 1;
      }
      const pid = alivePid();
      if (pid !== undefined) {
        process.kill(pid, "SIGTERM");
        for (let i = 0; i < 500 && alivePid() !== undefined; i++) await sleep(10);
      }
      rmSync(pidFile, { force: true });
      record(true);
      return 0;
    }
    default:
      process.stderr.write(`unknown op ${op}\n`);
      return 2;
  }
}

main().then((code) => process.exit(code));
