// The command driver's status contract against a real PostgreSQL (Debian's package; a throwaway
// cluster in a temp dir), the stack being the database itself, driven by `pg_ctl` as a new user
// would configure it: a controller (in process) and the real agent (a cued engine).
//
// `pg_ctl status` run as root exits 1 ("cannot be run as root"): the status is unknown, so the
// quiesce is refused with pg_ctl's words and the database is never stopped — and the job fails
// (policy fail), never ending app-consistent while its restore would need WAL replay. The same
// commands run as the cluster's owner (runuser) give exit 0 / 3, and the quiesce works.
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { Consistency, Phase, StackState } from "@lull/proto";
import { Harness } from "@lull/controller/testing";
import { requireAvailable } from "../support/require.js";
import { waitFor } from "../support/temp.js";
import { postgresUnavailable, startPgCluster, type PgCluster } from "./pg-cluster.js";

const S = StackState;
const unavailable = postgresUnavailable();

function pgDriver(pg: PgCluster, statusAsRoot: boolean) {
  const data = join(pg.dir, "data");
  const pgCtl = join(pg.bin, "pg_ctl");
  const asOwner = (args: string[]) => ["runuser", "-u", "postgres", "--", pgCtl, "-D", data, ...args];
  return {
    type: "command" as const,
    start: asOwner(["-l", join(pg.dir, "server.log"), "-w", "-t", "30", "start"]),
    stop: asOwner(["-m", "fast", "-w", "-t", "30", "stop"]),
    status: statusAsRoot ? [pgCtl, "-D", data, "status"] : asOwner(["status"]),
    timeoutMs: 40_000,
    verifyTimeoutMs: 10_000,
  };
}

/** The database answers a query. */
function pgRuns(pg: PgCluster): boolean {
  try {
    return pg.query("SELECT 1") === "1";
  } catch {
    return false;
  }
}

describe("command driver status contract (real PostgreSQL, pg_ctl)", () => {
  let pg: PgCluster;
  before(async () => {
    requireAvailable("PostgreSQL (root, apt-get install postgresql)", unavailable);
    pg = await startPgCluster();
  });
  after(async () => {
    await pg?.stop();
  });

  it("pg_ctl status as root: said at start, the quiesce refused with pg_ctl's reason, the database never stopped, the job failed", async (t) => {
    const h = await Harness.create({ driverConfig: pgDriver(pg, true) });
    t.after(() => h.cleanup());
    await h.startRegistered();
    const problem = await h.logs.waitFor("a configured stack command cannot run — quiesces are refused until it can", () => true, 15_000);
    assert.match(String(problem.problem), /^driver\.status cannot tell whether the stack runs: .*exited 1: .*cannot be run as root.*runuser/s);

    const job = await h.agent.createJob();
    await h.agent.to(job.id, Phase.PHASE_QUIESCING);
    await h.agent.waitForStack(job.id, "app", S.STACK_STATE_REFUSED, 30_000);
    const reason = (await h.agent.stack(job.id, "app"))?.reason ?? "";
    assert.match(reason, /^the stack is not stopped: status command .*pg_ctl -D .* status exited 1: the status is unknown .*cannot be run as root/s);
    assert.ok(pgRuns(pg), "the database runs: it was never stopped");
    assert.equal(h.agent.faults.callsOf("acknowledgeQuiesce").length, 0, "no acknowledgement, left-stopped or otherwise");
    await waitFor("the job to fail", async () => (await h.agent.job(job.id)).phase === Phase.PHASE_FAILED, 15_000);
    const failed = await h.agent.job(job.id);
    assert.equal(failed.errorCode, "LULL_E_QUIESCE_REFUSED");
    assert.notEqual(failed.consistency, Consistency.CONSISTENCY_APP);
  });

  it("the same commands as the cluster's owner: running (0), stopped (3) for the snapshot, running again after", async (t) => {
    const h = await Harness.create({ driverConfig: pgDriver(pg, false) });
    t.after(() => h.cleanup());
    await h.startRegistered();
    await h.logs.waitFor("stack commands checked", () => true, 15_000);
    const job = await h.agent.createJob();
    await h.agent.to(job.id, Phase.PHASE_QUIESCING);
    await h.agent.waitForStack(job.id, "app", S.STACK_STATE_QUIESCED, 60_000);
    assert.equal(pgRuns(pg), false, "the database is stopped while quiesced");
    await h.agent.to(job.id, Phase.PHASE_SNAPSHOTTED);
    await h.agent.waitForStack(job.id, "app", S.STACK_STATE_RESUMED, 60_000);
    assert.ok(pgRuns(pg), "the database runs again");
    await h.agent.to(job.id, Phase.PHASE_DONE);
    assert.equal((await h.agent.job(job.id)).consistency, Consistency.CONSISTENCY_APP);
  });
});
