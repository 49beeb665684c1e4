// The built-in `postgres` check: start PostgreSQL on the replica's restored data directory, on a
// private socket (the replica's own 0700 `sock/`), with no TCP listener, the spare port naming the
// socket; pass only when the server opens WITHOUT crash recovery (its log says `database system
// was shut down at …` and never `redo starts` / `automatic recovery in progress`), then run the
// user's queries. The server never archives WAL (archive_mode off) and takes its client
// authentication from a file of the replica's (local trust on the private socket), so nothing of
// the copy reaches out or takes settings meant for the live server's clients.
//
// The data directory's stale `postmaster.pid` (the live server's, copied with the data) is removed
// first: its pid may be alive on this host, and PostgreSQL would refuse to start. PostgreSQL
// refuses to run as root, so the replica is handed to `check.user`.
import { existsSync, readdirSync } from "node:fs";
import { rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { CommandRunner, Launcher } from "@lull/shared";
import type { PostgresCheck } from "../config.js";
import { REPLICA_ENV, type Replica } from "../replica.js";
import type { CheckOutcome } from "./outcome.js";

const PG_ROOT = "/usr/lib/postgresql";

/** The newest installed PostgreSQL's bin dir (Debian's layout). */
export function defaultPostgresBinDir(): string | undefined {
  if (!existsSync(PG_ROOT)) return undefined;
  const versions = readdirSync(PG_ROOT)
    .filter((v) => /^\d+$/.test(v) && existsSync(join(PG_ROOT, v, "bin", "postgres")))
    .sort((a, b) => Number(b) - Number(a));
  return versions[0] === undefined ? undefined : join(PG_ROOT, versions[0], "bin");
}

/** Log lines that show the server replayed WAL after an unclean stop. */
const RECOVERY = /redo starts at|automatic recovery in progress|database system was interrupted|was not properly shut down|starting backup recovery|entering standby mode/;
const CLEAN = /database system was shut down at/;
const READY = /database system is ready to accept connections/;

export interface PostgresCheckDeps {
  runner: CommandRunner;
  launcher: Launcher;
  signal: AbortSignal;
}

/** What the server's start-up log says about how the data directory was left. */
export function startupVerdict(log: readonly string[]): { clean: boolean; recovery: string[]; reason: string } {
  const recovery = log.filter((l) => RECOVERY.test(l));
  const clean = log.some((l) => CLEAN.test(l));
  if (recovery.length > 0) return { clean: false, recovery, reason: `PostgreSQL ran crash recovery: ${recovery[0]!.replace(/^.*?(LOG|WARNING):\s+/, "")}` };
  if (!clean) return { clean: false, recovery, reason: "PostgreSQL did not report a clean shut-down (`database system was shut down at`)" };
  return { clean: true, recovery, reason: "" };
}

export async function runPostgresCheck(replica: Replica, check: PostgresCheck, deps: PostgresCheckDeps): Promise<CheckOutcome> {
  const started = Date.now();
  const bin = check.binDir ?? defaultPostgresBinDir();
  if (bin === undefined) return fail(started, `no PostgreSQL found under ${PG_ROOT}: install it or set binDir`, {});
  const dataDir = join(replica.root, check.dataDir);
  if (!existsSync(join(dataDir, "PG_VERSION"))) {
    return fail(started, `${check.dataDir} in the restored point is not a PostgreSQL data directory (no PG_VERSION): fix the check's dataDir`, {});
  }
  const env = { [REPLICA_ENV]: replica.dir };
  const { runner, launcher, signal } = deps;
  await rm(join(dataDir, "postmaster.pid"), { force: true });
  const hba = join(replica.dir, "pg_hba.conf");
  await writeFile(hba, "local all all trust\n", { mode: 0o600 });
  await runner.run("chown", ["-R", `${check.user}:`, replica.dir], { signal, timeoutMs: 600_000 });
  await runner.run("chmod", ["0700", dataDir], { signal, timeoutMs: 10_000 });

  const port = String(replica.state.port);
  const log: string[] = [];
  let ready!: () => void;
  const opened = new Promise<void>((resolve) => (ready = resolve));
  const server = launcher.launch(
    "runuser",
    [
      "-u", check.user, "--",
      join(bin, "postgres"), "-D", dataDir, "-p", port, "-k", replica.socketDir,
      "-c", "listen_addresses=", "-c", `hba_file=${hba}`, "-c", "archive_mode=off", "-c", "logging_collector=off",
      "-c", "log_destination=stderr", "-c", "max_connections=20", "-c", "shared_buffers=32MB",
    ],
    {
      env,
      signal,
      stopGraceMs: 10_000,
      onLine: (line) => {
        if (log.length < 400) log.push(line);
        if (READY.test(line)) ready();
      },
    },
  );
  const evidence: Record<string, unknown> = { port: replica.state.port };
  try {
    const timeout = new Promise<"timeout">((r) => setTimeout(() => r("timeout"), check.startTimeoutMs).unref());
    const first = await Promise.race([opened.then(() => "open" as const), server.exit.then(() => "exit" as const), timeout]);
    const openMs = Date.now() - started;
    evidence.openMs = openMs;
    evidence.log = excerpt(log);
    if (first !== "open") {
      if (signal.aborted) throw signal.reason;
      const verdict = startupVerdict(log);
      const hint = log.some((l) => /Permission denied/.test(l)) ? ` (the scratch directory and every directory above it must be searchable by ${check.user})` : "";
      return fail(started, (first === "timeout" ? `PostgreSQL did not open within ${check.startTimeoutMs} ms` : `PostgreSQL exited before opening${verdict.recovery.length ? ` (${verdict.reason})` : ""}: ${log.at(-1) ?? ""}`) + hint, evidence);
    }
    const verdict = startupVerdict(log);
    evidence.crashRecovery = !verdict.clean;
    if (!verdict.clean) return fail(started, verdict.reason, evidence);
    const results: Array<{ sql: string; output: string; ms: number }> = [];
    evidence.queries = results;
    for (const sql of check.queries) {
      const t0 = Date.now();
      const r = await runner.run(
        "runuser",
        ["-u", check.user, "--", join(bin, "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", replica.socketDir, "-p", port, "-d", check.database, "-c", sql],
        { env, signal, timeoutMs: 600_000, reject: false },
      );
      results.push({ sql, output: (r.exitCode === 0 ? r.stdout : r.stderr).trim().slice(0, 2_000), ms: Date.now() - t0 });
      if (r.exitCode !== 0) return fail(started, `query failed: ${sql}: ${r.stderr.trim().split("\n").at(-1) ?? ""}`, evidence);
    }
    return { ok: true, reason: "", durationMs: Date.now() - started, evidence };
  } finally {
    server.kill();
    await server.exit;
  }
}

function excerpt(log: readonly string[]): string[] {
  return log.length <= 30 ? [...log] : [...log.slice(0, 20), `… ${log.length - 30} lines …`, ...log.slice(-10)];
}

function fail(started: number, reason: string, evidence: Record<string, unknown>): CheckOutcome {
  return { ok: false, reason, durationMs: Date.now() - started, evidence };
}
