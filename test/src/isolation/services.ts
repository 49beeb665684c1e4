// The three services of the isolation test, each with its own data directory (a btrfs subvolume):
//   sqlite  — `records.db`, WAL mode, synchronous=FULL, one committed transaction per record
//   log     — `records.log`, append-only, one JSON line per record, fsync'd
//   objects — `objects/<id>.json`, one file per record: temp file, fsync, rename, fsync the dir
// A writer returns from `write` only when the record is durable. A reader reads what a restore
// holds and names every sign of damage (torn line, leftover temp file, failed integrity check).
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, writeSync } from "node:fs";
import { join } from "node:path";
import Database from "better-sqlite3";
import { payloadOf, type ServiceKind, type StoredRecord } from "./ledger.js";

export interface ServiceWriter {
  /** The highest record id already in the data (0 when empty). */
  maxId(): number;
  /** Writes one record; returns once it is durable. */
  write(record: StoredRecord): void;
  close(): void;
}

/** What a service's data holds: its records by id, and what is wrong with it. */
export interface ServiceContents {
  records: StoredRecord[];
  problems: string[];
}

const SQLITE_FILE = "records.db";
const LOG_FILE = "records.log";
const OBJECTS_DIR = "objects";
const objectName = (id: number) => `${String(id).padStart(10, "0")}.json`;
const recordLine = (r: StoredRecord) => `${JSON.stringify({ id: r.id, at: r.at, payload: payloadOf(r.id) })}\n`;

function openSqliteWriter(dataDir: string): ServiceWriter {
  const db = new Database(join(dataDir, SQLITE_FILE));
  db.pragma("journal_mode = WAL");
  db.pragma("synchronous = FULL");
  db.exec("CREATE TABLE IF NOT EXISTS records (id INTEGER PRIMARY KEY, at INTEGER NOT NULL, payload TEXT NOT NULL)");
  const insert = db.prepare("INSERT INTO records (id, at, payload) VALUES (?, ?, ?)");
  const commit = db.transaction((r: StoredRecord) => insert.run(r.id, r.at, payloadOf(r.id)));
  return {
    maxId: () => Number((db.prepare("SELECT coalesce(max(id), 0) AS id FROM records").get() as { id: number }).id),
    write: (r) => void commit(r),
    close: () => db.close(),
  };
}

function openLogWriter(dataDir: string): ServiceWriter {
  const path = join(dataDir, LOG_FILE);
  const last = readLogFile(path).records.at(-1);
  const fd = openSync(path, "a");
  return {
    maxId: () => last?.id ?? 0,
    write(r) {
      writeSync(fd, recordLine(r));
      fsyncSync(fd);
    },
    close: () => closeSync(fd),
  };
}

function openObjectsWriter(dataDir: string): ServiceWriter {
  const dir = join(dataDir, OBJECTS_DIR);
  mkdirSync(dir, { recursive: true });
  const existing = readObjectsDir(dir).records;
  const dirFd = openSync(dir, "r");
  return {
    maxId: () => existing.at(-1)?.id ?? 0,
    write(r) {
      const tmp = join(dir, `.${objectName(r.id)}.tmp`);
      const fd = openSync(tmp, "w");
      try {
        writeSync(fd, recordLine(r));
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      renameSync(tmp, join(dir, objectName(r.id)));
      fsyncSync(dirFd);
    },
    close: () => closeSync(dirFd),
  };
}

export function openServiceWriter(kind: ServiceKind, dataDir: string): ServiceWriter {
  if (kind === "sqlite") return openSqliteWriter(dataDir);
  if (kind === "log") return openLogWriter(dataDir);
  return openObjectsWriter(dataDir);
}

/** Parses one stored record line; undefined when it is not a whole, undamaged record. */
function parseRecordLine(line: string): StoredRecord | undefined {
  try {
    const r = JSON.parse(line) as { id?: unknown; at?: unknown; payload?: unknown };
    if (!Number.isInteger(r.id) || !Number.isFinite(r.at) || r.payload !== payloadOf(r.id as number)) return undefined;
    return { id: r.id as number, at: r.at as number };
  } catch {
    return undefined;
  }
}

function readSqlite(dataDir: string): ServiceContents {
  const path = join(dataDir, SQLITE_FILE);
  if (!existsSync(path)) return { records: [], problems: [`${SQLITE_FILE} is missing`] };
  const problems: string[] = [];
  let db: Database.Database | undefined;
  try {
    db = new Database(path, { fileMustExist: true });
    const integrity = (db.pragma("integrity_check") as Array<{ integrity_check: string }>).map((r) => r.integrity_check);
    if (integrity.join() !== "ok") problems.push(`PRAGMA integrity_check: ${integrity.slice(0, 5).join("; ")}`);
    const rows = db.prepare("SELECT id, at, payload FROM records ORDER BY id").all() as Array<StoredRecord & { payload: string }>;
    for (const row of rows) if (row.payload !== payloadOf(row.id)) problems.push(`row ${row.id} has a damaged payload`);
    return { records: rows.map((r) => ({ id: r.id, at: r.at })), problems };
  } catch (err) {
    return { records: [], problems: [...problems, `${SQLITE_FILE} cannot be read: ${(err as Error).message}`] };
  } finally {
    db?.close();
  }
}

function readLogFile(path: string): ServiceContents {
  if (!existsSync(path)) return { records: [], problems: [`${LOG_FILE} is missing`] };
  const text = readFileSync(path, "utf8");
  const lines = text.split("\n");
  const records: StoredRecord[] = [];
  const problems: string[] = [];
  lines.forEach((line, i) => {
    if (i === lines.length - 1 && line === "") return;
    const record = parseRecordLine(line);
    if (record) records.push(record);
    else problems.push(i === lines.length - 1 ? `torn last line ${i + 1}` : `damaged line ${i + 1}`);
  });
  return { records, problems };
}

function readObjectsDir(dir: string): ServiceContents {
  if (!existsSync(dir)) return { records: [], problems: [`${OBJECTS_DIR}/ is missing`] };
  const records: StoredRecord[] = [];
  const problems: string[] = [];
  for (const name of readdirSync(dir).sort()) {
    const record = /^\d{10}\.json$/.test(name) ? parseRecordLine(readFileSync(join(dir, name), "utf8").trimEnd()) : undefined;
    if (record && objectName(record.id) === name) records.push(record);
    else problems.push(name.endsWith(".tmp") ? `partial object ${name} (a write in progress)` : `damaged object ${name}`);
  }
  return { records, problems };
}

/** Reads a service's data directory (live, or as restored from a backup). Records by id. */
export function readServiceContents(kind: ServiceKind, dataDir: string): ServiceContents {
  const contents =
    kind === "sqlite" ? readSqlite(dataDir) : kind === "log" ? readLogFile(join(dataDir, LOG_FILE)) : readObjectsDir(join(dataDir, OBJECTS_DIR));
  contents.records.sort((a, b) => a.id - b.id);
  return contents;
}
