// The demo stack: an app that appends a timestamped record to `<dataDir>/records.jsonl` every
// ~20 ms, each write fsync'd before the next, so every record it wrote before it stopped is on disk.
// `node app.js <dataDir> [intervalMs]`. Writes its pid file once the first record is durable;
// SIGTERM (or SIGINT) finishes the current write, closes, removes the pid file and exits 0.
import { closeSync, fsyncSync, openSync, renameSync, rmSync, writeFileSync, writeSync } from "node:fs";
import { formatRecord, lastRecord, pidFile, recordsFile } from "./records.js";

function log(fields: Record<string, unknown>, msg: string): void {
  process.stdout.write(`${JSON.stringify({ time: new Date().toISOString(), ...fields, msg })}\n`);
}

function main(): void {
  const dataDir = process.argv[2];
  const intervalMs = Number(process.argv[3] ?? 20);
  if (!dataDir || !Number.isFinite(intervalMs) || intervalMs < 1) {
    process.stderr.write("usage: app.js <dataDir> [intervalMs]\n");
    process.exit(2);
  }
  const path = recordsFile(dataDir);
  let nextId = (lastRecord(path)?.id ?? 0) + 1;
  const fd = openSync(path, "a");

  const writeOne = () => {
    writeSync(fd, formatRecord({ id: nextId, at: Date.now() }));
    fsyncSync(fd);
    nextId++;
  };
  writeOne();
  const tmp = `${pidFile(dataDir)}.tmp`;
  writeFileSync(tmp, `${process.pid}\n`);
  renameSync(tmp, pidFile(dataDir));
  log({ pid: process.pid, firstId: nextId - 1, intervalMs }, "app started");

  const timer = setInterval(writeOne, intervalMs);
  const shutdown = (signal: string) => {
    clearInterval(timer);
    closeSync(fd);
    rmSync(pidFile(dataDir), { force: true });
    log({ pid: process.pid, lastId: nextId - 1, signal }, "app stopped");
    process.exit(0);
  };
  process.once("SIGTERM", () => shutdown("SIGTERM"));
  process.once("SIGINT", () => shutdown("SIGINT"));
}

main();
