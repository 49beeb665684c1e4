// kill -9 of the agent while it verifies a point on a replica (a real PostgreSQL running a query
// on the restored data directory): the restart tears the replica down — no scratch directory, no
// process carrying the replica's mark, no socket left — ends the run `failed` with the reason, and
// does not verify the same point again by itself (no re-verify loop after a teardown).
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { chmodSync, chownSync, existsSync, mkdirSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import Database from "better-sqlite3";
import { makeTempDir, removeDir, sleep, startAgent, waitFor, type AgentProcess } from "../support/index.js";
import { processesWithEnv } from "../support/leftovers.js";
import { postgresBinDir, postgresUnavailable } from "../quiesce/pg-cluster.js";
import { requireAvailable } from "../support/require.js";

describe("verification crash (kill -9 during a replica's check)", () => {
  let dir: string | undefined;
  let agent: AgentProcess | undefined;
  after(async () => {
    await agent?.stop().catch(() => undefined);
    if (dir) await removeDir(dir);
  });

  it("the restarted agent tears the replica down and does not loop", async () => {
    requireAvailable("PostgreSQL (root, apt-get install postgresql)", postgresUnavailable());
    dir = await makeTempDir("lull-verify-kill-");
    chmodSync(dir, 0o755);
    const vol = join(dir, "vol");
    mkdirSync(vol, { mode: 0o755 });
    chownSync(vol, Number(execFileSync("id", ["-u", "postgres"], { encoding: "utf8" })), Number(execFileSync("id", ["-g", "postgres"], { encoding: "utf8" })));
    execFileSync("runuser", ["-u", "postgres", "--", join(postgresBinDir()!, "initdb"), "-D", join(vol, "pgdata"), "-A", "trust", "-U", "postgres", "--no-sync"], { stdio: "pipe" });

    agent = await startAgent({
      dir,
      guests: [{ id: "pg1", driver: "dir", snapshot: "copy", volumes: [{ name: "db", path: vol }] }],
      config: {
        verify: {
          checks: [{ guest: "pg1", stack: "db", check: { type: "postgres", dataDir: "db/pgdata", queries: ["SELECT pg_sleep(120)"] } }],
          ports: { from: 55340, to: 55360 },
        },
      },
    });
    const staging = join(dir, "staging", "verify");
    const job = await agent.client().backup("pg1", 60_000);
    assert.equal(job.errorMessage, "");
    // The backup's end starts the verification: wait until the replica's server listens on its socket.
    const replica = await waitFor(
      "the replica's PostgreSQL socket",
      () => {
        const name = readdirSync(staging).find((n) => n.startsWith("lull-verify-"));
        if (!name) return undefined;
        const sock = join(staging, name, "sock");
        return existsSync(sock) && readdirSync(sock).some((f) => f.startsWith(".s.PGSQL.")) ? join(staging, name) : undefined;
      },
      60_000,
    ).catch((err: unknown) => {
      throw new Error(`${String(err)}\n${agent!.proc.tail(40)}`);
    });
    const before = await processesWithEnv("LULL_REPLICA", replica);
    assert.ok(before.some((p) => /postgres/.test(p.cmdline)), `PostgreSQL runs on the replica: ${JSON.stringify(before)}`);

    await agent.kill9();
    await sleep(300);
    assert.ok(existsSync(replica), "the crash left the replica");
    assert.ok((await processesWithEnv("LULL_REPLICA", replica)).length > 0, "the crash left its server running");

    await agent.restart();
    assert.ok(
      agent.proc.logs.some((l) => l.msg === "verification replica left by an earlier run torn down" && l.dir === replica),
      `the sweep is logged:\n${agent.proc.tail(30)}`,
    );
    assert.equal(existsSync(replica), false, "no scratch directory left");
    assert.deepEqual(await processesWithEnv("LULL_REPLICA", replica), [], "no process of the replica left");
    assert.deepEqual(readdirSync(staging).filter((n) => n.startsWith("lull-verify-")), []);

    const db = new Database(join(dir, "data", "agent.db"), { readonly: true });
    try {
      const rows = db.prepare("SELECT phase, reason FROM verifications").all() as Array<{ phase: string; reason: string }>;
      assert.equal(rows.length, 1);
      assert.equal(rows[0]!.phase, "failed");
      assert.match(rows[0]!.reason, /the agent stopped during checking; its replica was torn down at the next start/);
    } finally {
      db.close();
    }
    // No loop: the restarted agent does not verify the torn-down point again by itself.
    await sleep(1_500);
    assert.deepEqual(readdirSync(staging).filter((n) => n.startsWith("lull-verify-")), []);
    assert.equal(agent.proc.logs.filter((l) => l.msg === "verifying restore point").length, 0);
  });
});
