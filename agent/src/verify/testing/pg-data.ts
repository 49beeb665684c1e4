// A throwaway PostgreSQL data directory for the verifier's tests: initdb as `postgres` (runuser)
// into `<volume>/pgdata`, started on a private socket (no TCP), with a writer that inserts rows
// while a crash-consistent copy is taken.
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { appendFileSync, chownSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { defaultPostgresBinDir } from "../checks/postgres.js";

/** Why a real PostgreSQL cannot run here, or undefined. */
export function postgresUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return "needs root (PostgreSQL runs as the postgres user through runuser)";
  if (defaultPostgresBinDir() === undefined) return "no PostgreSQL under /usr/lib/postgresql (apt-get install postgresql)";
  try {
    execFileSync("id", ["-u", "postgres"], { stdio: "ignore" });
  } catch {
    return "no postgres user";
  }
  return undefined;
}

export interface PgData {
  volume: string;
  dataDir: string;
  socketDir: string;
  port: number;
  start(): void;
  /** A clean shut-down (`pg_ctl stop -m fast`). */
  stop(): void;
  query(sql: string): string;
  /** Inserts rows in a loop until stopped (a psql per batch). */
  startWriter(): { stop(): Promise<number> };
}

const ids = () => ({
  uid: Number(execFileSync("id", ["-u", "postgres"], { encoding: "utf8" }).trim()),
  gid: Number(execFileSync("id", ["-g", "postgres"], { encoding: "utf8" }).trim()),
});

export function makePgData(volume: string, port: number): PgData {
  const bin = defaultPostgresBinDir()!;
  const { uid, gid } = ids();
  const socketDir = join(volume, "..", `sock-${port}`);
  mkdirSync(volume, { recursive: true, mode: 0o755 });
  mkdirSync(socketDir, { recursive: true });
  chownSync(volume, uid, gid);
  chownSync(socketDir, uid, gid);
  const dataDir = join(volume, "pgdata");
  const as = (args: string[]) => execFileSync("runuser", ["-u", "postgres", "--", ...args], { encoding: "utf8", stdio: "pipe", timeout: 120_000 });
  as([join(bin, "initdb"), "-D", dataDir, "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"]);
  appendFileSync(join(dataDir, "postgresql.conf"), `\nlisten_addresses = ''\nunix_socket_directories = '${socketDir}'\nport = ${port}\n`);
  const psql = (sql: string) => as([join(bin, "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", socketDir, "-p", String(port), "-d", "postgres", "-c", sql]).trim();
  return {
    volume,
    dataDir,
    socketDir,
    port,
    start: () => void as([join(bin, "pg_ctl"), "-D", dataDir, "-l", join(socketDir, "server.log"), "-w", "-t", "60", "start"]),
    stop: () => void as([join(bin, "pg_ctl"), "-D", dataDir, "-m", "fast", "-w", "-t", "60", "stop"]),
    query: psql,
    startWriter() {
      let stopped = false;
      let batches = 0;
      let child: ChildProcess | undefined;
      const loop = (async () => {
        while (!stopped) {
          await new Promise<void>((resolve) => {
            child = spawn("runuser", ["-u", "postgres", "--", join(bin, "psql"), "-X", "-q", "-h", socketDir, "-p", String(port), "-d", "postgres", "-c",
              "INSERT INTO items (payload) SELECT md5(g::text) FROM generate_series(1, 2000) g"], { stdio: "ignore" });
            child.once("exit", () => resolve());
          });
          batches += 1;
        }
      })();
      return {
        async stop() {
          stopped = true;
          await loop;
          return batches;
        },
      };
    },
  };
}
