// Migration 7 rebuilds `jobs` (a kind column, a CHECK per kind) under tables that reference it:
// nothing that referenced a job is lost, and foreign keys are on again afterwards.
import { strict as assert } from "node:assert";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, it } from "node:test";
import Database from "better-sqlite3";
import { MIGRATIONS, migrate } from "./migrations.js";

const dir = mkdtempSync(join(tmpdir(), "lull-migrate-"));
after(() => rmSync(dir, { recursive: true, force: true }));

it("migration 7 gives every existing job the kind backup and keeps its stacks and shutdown rows; the CHECK is per kind", () => {
  const db = new Database(join(dir, "v6.db"));
  db.pragma("foreign_keys = ON");
  migrate(db, MIGRATIONS.filter((m) => m.version <= 6));
  db.exec(`
    INSERT INTO jobs (id, guest_id, idempotency_key, phase, engine, policy, created_at, updated_at, phase_since, quiesce_timeout_ms, epoch)
      VALUES ('j-1', '101', 'k1', 'done', 'vzdump', 1, 1, 2, 2, 1000, 1);
    INSERT INTO job_stacks (job_id, stack, state) VALUES ('j-1', 'app', 3);
    INSERT INTO vzdump_shutdowns (job_id, vmid, vmtype, shutdown_at) VALUES ('j-1', 101, 'lxc', 1);
  `);
  assert.deepEqual(migrate(db), MIGRATIONS.filter((m) => m.version > 6).map((m) => m.version));
  assert.equal(db.pragma("foreign_keys", { simple: true }), 1, "foreign keys are on again");
  assert.deepEqual(db.prepare("SELECT id, kind, phase FROM jobs").all(), [{ id: "j-1", kind: "backup", phase: "done" }]);
  assert.equal((db.prepare("SELECT COUNT(*) AS n FROM job_stacks WHERE job_id = 'j-1'").get() as { n: number }).n, 1);
  assert.equal((db.prepare("SELECT COUNT(*) AS n FROM vzdump_shutdowns WHERE job_id = 'j-1'").get() as { n: number }).n, 1);

  const insert = db.prepare(
    `INSERT INTO jobs (id, kind, guest_id, idempotency_key, phase, engine, policy, created_at, updated_at, phase_since, quiesce_timeout_ms, epoch)
     VALUES (?, ?, '102', ?, ?, 'native', 1, 1, 1, 1, 1000, 1)`,
  );
  assert.throws(() => insert.run("j-2", "backup", "k2", "restoring"), /CHECK constraint failed/, "a backup has backup phases only");
  assert.throws(() => insert.run("j-3", "gardening", "k3", "queued"), /CHECK constraint failed/, "kinds are known");
  insert.run("j-4", "restore", "k4", "restoring");
  // The cascade still works on the rebuilt table.
  db.exec("DELETE FROM jobs WHERE id = 'j-1'");
  assert.equal((db.prepare("SELECT COUNT(*) AS n FROM job_stacks").get() as { n: number }).n, 0);
  db.close();
});
