// The built-in `postgres` session step: psql holds PostgreSQL's backup mode for as long as the
// stack is quiesced. The backup mode is session-scoped (PostgreSQL ≥ 15 `pg_backup_start`, and the
// non-exclusive `pg_start_backup(label, fast, false)` before it): `pg_backup_stop` from any other
// session fails with "backup is not in progress", and the server aborts the backup when the
// session ends. So psql stays open between the pre step and the resume.
//
// psql runs with -X (no psqlrc), -q, -A -t (bare values), ON_ERROR_STOP=1 (an error ends psql with
// exit 3, so a failed statement is seen as the session ending), and the label, fast and wait
// flags as psql variables (`:'lull_label'` quotes them: no SQL is built from strings). It needs
// psql ≥ 10 (`\if`) and a server ≥ 9.6. Markers with a per-session nonce say when each part is done.
import { randomBytes } from "node:crypto";
import { closeSync, fsyncSync, openSync, renameSync, writeSync } from "node:fs";
import { LullError } from "@lull/shared";
import type { SessionSpec } from "./client-session.js";
import type { PostgresStepConfig } from "./schema.js";

export interface PostgresBackupStart {
  /** The WAL location pg_backup_start returned. */
  startLsn: string;
}

export interface PostgresBackupStop {
  stopLsn: string;
  /** The backup_label content pg_backup_stop returned (belongs in the data directory of a restore). */
  labelFile: string;
  /** The LABEL line of it. */
  label: string;
}

export interface PostgresSession {
  spec: SessionSpec;
  parseStart(output: string): PostgresBackupStart;
  parseStop(output: string): PostgresBackupStop;
}

const LSN = /^[0-9A-F]+\/[0-9A-F]+$/;

export function postgresSession(step: PostgresStepConfig, jobId: string | undefined, nonce = randomBytes(6).toString("hex")): PostgresSession {
  const [psql, ...rest] = step.psql as [string, ...string[]];
  const label = jobId ? `${step.label} ${jobId}` : step.label;
  const ready = `LULL-READY-${nonce}`;
  const done = `LULL-DONE-${nonce}`;
  const argv = [
    psql,
    "-X",
    "-q",
    "-A",
    "-t",
    "-v",
    "ON_ERROR_STOP=1",
    "-v",
    `lull_label=${label}`,
    "-v",
    `lull_fast=${step.fast}`,
    "-v",
    `lull_wait=${step.waitForArchive}`,
    ...rest,
  ];
  const start = [
    "SELECT current_setting('server_version_num')::int >= 150000 AS lull_pg15 \\gset",
    "\\if :lull_pg15",
    "SELECT pg_backup_start(:'lull_label', :lull_fast);",
    "\\else",
    "SELECT pg_start_backup(:'lull_label', :lull_fast, false);",
    "\\endif",
    `\\echo ${ready}`,
  ].join("\n");
  const stop = [
    "\\if :lull_pg15",
    "SELECT lsn, encode(convert_to(labelfile, 'UTF8'), 'hex') FROM pg_backup_stop(:lull_wait);",
    "\\else",
    "SELECT lsn, encode(convert_to(labelfile, 'UTF8'), 'hex') FROM pg_stop_backup(false, :lull_wait);",
    "\\endif",
    `\\echo ${done}`,
  ].join("\n");
  return {
    spec: {
      argv,
      env: { PGAPPNAME: step.applicationName },
      start,
      ready: new RegExp(`^${ready}$`, "m"),
      timeoutMs: step.timeoutMs,
      stop,
      done: new RegExp(`^${done}$`, "m"),
      stopTimeoutMs: step.stopTimeoutMs,
    },
    parseStart(output) {
      const lines = output.split("\n").map((l) => l.trim());
      const startLsn = lines.filter((l) => LSN.test(l)).at(-1);
      if (startLsn === undefined) throw new LullError("LULL_E_COMMAND_FAILED", `pg_backup_start returned no WAL location: ${output.slice(0, 200)}`);
      return { startLsn };
    },
    parseStop(output) {
      const row = output
        .split("\n")
        .map((l) => /^([0-9A-F]+\/[0-9A-F]+)\|([0-9a-f]*)$/.exec(l.trim()))
        .find((m) => m !== null);
      if (!row) throw new LullError("LULL_E_COMMAND_FAILED", `pg_backup_stop returned no result: ${output.slice(0, 200)}`);
      const labelFile = Buffer.from(row[2] ?? "", "hex").toString("utf8");
      const labelLine = /^LABEL: (.*)$/m.exec(labelFile);
      return { stopLsn: row[1] ?? "", labelFile, label: labelLine?.[1] ?? "" };
    },
  };
}

/** Writes the backup_label content to `path` crash-safely (temp file, fsync, rename). */
export function writeLabelFile(path: string, content: string): void {
  const tmp = `${path}.tmp-${process.pid}`;
  const fd = openSync(tmp, "w", 0o600);
  try {
    writeSync(fd, content);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
}
