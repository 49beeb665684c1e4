// A throwaway PostgreSQL cluster for tests, from Debian's `postgresql` package: initdb as the
// `postgres` user (runuser) in a temp dir, a unix socket in that dir (no TCP), a free port number
// naming the socket, started and stopped with pg_ctl. Every command is an argv array.
import { execFileSync } from "node:child_process";
import { appendFileSync, chownSync, existsSync, readdirSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { makeTempDir, removeDir } from "../support/temp.js";

const PG_ROOT = "/usr/lib/postgresql";

/** The newest installed PostgreSQL's bin dir, or undefined. */
export function postgresBinDir(): string | undefined {
  if (!existsSync(PG_ROOT)) return undefined;
  const versions = readdirSync(PG_ROOT)
    .filter((v) => /^\d+$/.test(v) && existsSync(join(PG_ROOT, v, "bin", "initdb")))
    .sort((a, b) => Number(b) - Number(a));
  return versions[0] === undefined ? undefined : join(PG_ROOT, versions[0], "bin");
}

/** Why a real cluster cannot run here, or undefined when it can. */
export function postgresUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return "needs root (initdb runs as the postgres user through runuser)";
  if (postgresBinDir() === undefined) return `no PostgreSQL under ${PG_ROOT} (apt-get install postgresql)`;
  try {
    execFileSync("id", ["-u", "postgres"], { stdio: "ignore" });
  } catch {
    return "no postgres user";
  }
  return undefined;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

export interface PgCluster {
  dir: string;
  bin: string;
  socketDir: string;
  port: number;
  /** psql argv (without the SQL) connecting as `postgres` to `database`. */
  psqlArgv(database?: string): string[];
  /** Runs one SQL statement in its own session; returns the bare output (-A -t). */
  query(sql: string, database?: string): string;
  /** Like query, but the statement must fail; returns psql's stderr. */
  queryFails(sql: string): string;
  stop(): Promise<void>;
}

export async function startPgCluster(): Promise<PgCluster> {
  const bin = postgresBinDir();
  if (bin === undefined) throw new Error("no PostgreSQL installed");
  const dir = await makeTempDir("lull-pg-");
  const uid = Number(execFileSync("id", ["-u", "postgres"], { encoding: "utf8" }).trim());
  const gid = Number(execFileSync("id", ["-g", "postgres"], { encoding: "utf8" }).trim());
  chownSync(dir, uid, gid);
  const data = join(dir, "data");
  const port = await freePort();
  const asPostgres = (args: string[]) => execFileSync("runuser", ["-u", "postgres", "--", ...args], { stdio: "pipe", timeout: 60_000 });
  asPostgres([join(bin, "initdb"), "-D", data, "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"]);
  appendFileSync(data + "/postgresql.conf", `\nlisten_addresses = ''\nunix_socket_directories = '${dir}'\nport = ${port}\nfsync = off\n`);
  asPostgres([join(bin, "pg_ctl"), "-D", data, "-l", join(dir, "server.log"), "-w", "-t", "30", "start"]);
  const psqlArgv = (database = "postgres") => [join(bin, "psql"), "-h", dir, "-p", String(port), "-U", "postgres", "-d", database];
  const run = (sql: string, database?: string) =>
    execFileSync(psqlArgv(database)[0]!, [...psqlArgv(database).slice(1), "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql], {
      encoding: "utf8",
      stdio: "pipe",
      timeout: 10_000,
    });
  return {
    dir,
    bin,
    socketDir: dir,
    port,
    psqlArgv,
    query: (sql, database) => run(sql, database).trim(),
    queryFails(sql) {
      try {
        run(sql);
      } catch (err) {
        return String((err as { stderr?: string }).stderr ?? err);
      }
      throw new Error(`expected to fail: ${sql}`);
    },
    async stop() {
      try {
        asPostgres([join(bin, "pg_ctl"), "-D", data, "-m", "immediate", "-w", "-t", "30", "stop"]);
      } finally {
        await removeDir(dir);
      }
    },
  };
}
