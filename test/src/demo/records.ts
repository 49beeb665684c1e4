// The demo app's data: one JSON line per record, `{"id":<n>,"at":<ms since epoch>}`, ids
// increasing by one, in `<dataDir>/records.jsonl`; its pid file is `<dataDir>/app.pid`.
import { closeSync, openSync, readSync, statSync } from "node:fs";
import { join } from "node:path";
import { readJsonLines } from "../support/json-lines.js";

export interface AppRecord {
  id: number;
  at: number;
}

export const recordsFile = (dataDir: string) => join(dataDir, "records.jsonl");
export const pidFile = (dataDir: string) => join(dataDir, "app.pid");
export const logFile = (dataDir: string) => join(dataDir, "app.log");

export function formatRecord(record: AppRecord): string {
  return `${JSON.stringify(record)}\n`;
}

/** Every complete record of a records file (a torn last line, from a crash, is ignored). */
export function readRecords(path: string): AppRecord[] {
  return (readJsonLines(path) as AppRecord[]).filter((r) => Number.isInteger(r?.id) && Number.isFinite(r?.at));
}

/** The last complete record, reading only the file's tail. */
export function lastRecord(path: string): AppRecord | undefined {
  let size: number;
  try {
    size = statSync(path).size;
  } catch {
    return undefined;
  }
  const length = Math.min(size, 4096);
  const buf = Buffer.alloc(length);
  const fd = openSync(path, "r");
  try {
    readSync(fd, buf, 0, length, size - length);
  } finally {
    closeSync(fd);
  }
  const lines = buf.toString("utf8").split("\n").filter(Boolean).reverse();
  for (const line of lines) {
    try {
      const r = JSON.parse(line) as AppRecord;
      if (Number.isInteger(r.id)) return r;
    } catch {
      // a torn or partial line: look further back
    }
  }
  return undefined;
}
