// The `postgres` session pre step against a real PostgreSQL (Debian's package; a throwaway cluster
// in a temp dir): a controller (in process) with a real process stack and the real agent (a cued engine).
//
// While the stack is quiesced, a second session sees the controller's psql session idle after
// `pg_backup_start` and the checkpoint it forced; `pg_backup_stop` from that second session fails
// ("backup is not in progress": the backup belongs to the controller's session). At resume the
// controller's session stops the backup and gets its label back, then goes away.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { Phase, StackState } from "@lull/proto";
import { Harness } from "@lull/controller/testing";
import { makeTempDir, removeDir, waitFor } from "../support/temp.js";
import { requireAvailable } from "../support/require.js";
import { postgresUnavailable, startPgCluster, type PgCluster } from "./pg-cluster.js";

const S = StackState;
const unavailable = postgresUnavailable();

/** The controller harness with a quiesce section (strategy stop: the app stops, the database stays up in backup mode). */
async function harness(pg: PgCluster, database: string, journal: string): Promise<Harness> {
  const append = (line: string) => [process.execPath, "-e", `require("node:fs").appendFileSync(process.argv[1], process.argv[2] + "\\n")`, journal, line];
  return Harness.create({
    quiesce: {
      strategy: "stop",
      pre: [{ type: "postgres", name: "pg", psql: pg.psqlArgv(database), label: "lull-test", labelFile: join(pg.dir, "backup_label"), timeoutMs: 20_000 }],
      post: [{ type: "command", name: "notify", argv: append("notify") }],
    },
  });
}

const lullSessions = (pg: PgCluster) =>
  pg.query("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'lull-controller' AND backend_type = 'client backend'");

describe("postgres session step (real PostgreSQL)", () => {
  let pg: PgCluster;
  let scratch: string;
  before(async () => {
    requireAvailable("PostgreSQL (root, apt-get install postgresql)", unavailable);
    pg = await startPgCluster();
    scratch = await makeTempDir("lull-pg-journal-");
  });
  after(async () => {
    await pg?.stop();
    if (scratch) await removeDir(scratch);
  });

  it("holds pg_backup_start in its session while quiesced; pg_backup_stop at resume returns the label", async (t) => {
    const journal = join(scratch, "ok.journal");
    const h = await harness(pg, "postgres", journal);
    t.after(() => h.cleanup());
    await h.startRegistered();
    const job = await h.agent.createJob();
    await h.agent.to(job.id, Phase.PHASE_QUIESCING);
    await h.agent.waitForStack(job.id, "app", S.STACK_STATE_QUIESCED, 30_000);
    assert.equal(h.stack.isRunning(), false, "the app is stopped");

    // Seen from a second session while the stack is quiesced.
    const row = pg.query(
      "SELECT state || '|' || query FROM pg_stat_activity WHERE application_name = 'lull-controller' AND backend_type = 'client backend'",
    );
    assert.equal(row, `idle|SELECT pg_backup_start('lull-test ${job.id}', true);`, "the controller's session sits idle in backup mode");
    const started = h.logs.find("quiesce step done", (l) => l.step === "pg" && l.hook === "pre")[0];
    assert.match(String(started?.startLsn), /^[0-9A-F]+\/[0-9A-F]+$/);
    assert.equal(pg.query("SELECT redo_lsn FROM pg_control_checkpoint()"), started?.startLsn, "the immediate checkpoint pg_backup_start forced");
    assert.match(pg.queryFails("SELECT pg_backup_stop()"), /backup is not in progress/, "the backup belongs to the controller's session only");

    await h.agent.to(job.id, Phase.PHASE_SNAPSHOTTED);
    await h.agent.waitForStack(job.id, "app", S.STACK_STATE_RESUMED, 30_000);
    assert.equal(h.stack.isRunning(), true);
    const ended = h.logs.find("quiesce step done", (l) => l.step === "pg" && l.hook === "session-end")[0];
    assert.equal(ended?.label, `lull-test ${job.id}`, "pg_backup_stop returned the backup's label");
    assert.match(String(ended?.backupLabel), new RegExp(`^START WAL LOCATION: ${String(started?.startLsn).replace("/", "\\/")} `, "m"));
    assert.match(String(ended?.stopLsn), /^[0-9A-F]+\/[0-9A-F]+$/);
    assert.equal(readFileSync(join(pg.dir, "backup_label"), "utf8"), ended?.backupLabel, "labelFile holds what pg_backup_stop returned");
    const report = h.agent.faults.callsOf("reportResumed")[0]?.request as { postStep?: string };
    assert.match(report.postStep ?? "", /^ok: pg \(\d+ ms\), notify \(\d+ ms\)$/);
    assert.equal(readFileSync(journal, "utf8"), "notify\n");
    await waitFor("the controller's session to end", () => lullSessions(pg) === "0", 10_000);
  });

  it("a wrong database: the quiesce is refused with psql's reason, post runs, the app keeps running", async (t) => {
    const journal = join(scratch, "nope.journal");
    const h = await harness(pg, "nope", journal);
    t.after(() => h.cleanup());
    await h.startRegistered();
    const job = await h.agent.createJob();
    await h.agent.to(job.id, Phase.PHASE_QUIESCING);
    await h.agent.waitForStack(job.id, "app", S.STACK_STATE_REFUSED, 30_000);
    assert.match(
      (await h.agent.stack(job.id, "app"))?.reason ?? "",
      /^pre step pg failed: the session ended before it was ready \(.*psql: exit 2: .*FATAL: {2}database "nope" does not exist\); post steps: ok: notify \(\d+ ms\)$/,
    );
    assert.equal(readFileSync(journal, "utf8"), "notify\n", "the post step ran");
    assert.equal(h.stack.isRunning(), true);
    assert.equal(h.stack.events().filter((e) => e.op === "stop").length, 0, "the app was never stopped");
    assert.equal(lullSessions(pg), "0");
  });

  it("the session killed server-side while quiesced (the backup is aborted): reported failed at resume; post still runs", async (t) => {
    const journal = join(scratch, "killed.journal");
    const h = await harness(pg, "postgres", journal);
    t.after(() => h.cleanup());
    await h.startRegistered();
    const job = await h.agent.createJob();
    await h.agent.to(job.id, Phase.PHASE_QUIESCING);
    await h.agent.waitForStack(job.id, "app", S.STACK_STATE_QUIESCED, 30_000);
    assert.equal(pg.query("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = 'lull-controller'"), "1");
    await waitFor("the backend to be gone", () => lullSessions(pg) === "0", 10_000);
    // psql idles on its stdin: it learns that its connection is gone only when pg_backup_stop is sent.

    await h.agent.to(job.id, Phase.PHASE_SNAPSHOTTED);
    await h.agent.waitForStack(job.id, "app", S.STACK_STATE_RESUMED, 30_000);
    const report = h.agent.faults.callsOf("reportResumed")[0]?.request as { postStep?: string };
    assert.match(
      report.postStep ?? "",
      /^failed: pg: the session ended before it was done \(.*psql: exit 2: .*terminating connection due to administrator command.*\); ok: notify \(\d+ ms\)$/,
    );
    assert.equal(readFileSync(journal, "utf8"), "notify\n");
    assert.equal(h.stack.isRunning(), true);
  });
});

