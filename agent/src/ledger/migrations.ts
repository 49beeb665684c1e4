// Numbered schema migrations of the agent's SQLite database, tracked by PRAGMA user_version.
// Append only: a released migration never changes; a new one gets the next number.
import type { Database } from "better-sqlite3";
import { LullError } from "@lull/shared";

export interface Migration {
  version: number;
  description: string;
  sql: string;
  /**
   * The migration rebuilds a table other tables reference (SQLite cannot change a CHECK in place):
   * it runs with foreign keys off, so dropping the old table cascades nowhere, and is checked with
   * `PRAGMA foreign_key_check` before it commits.
   */
  rebuildsTables?: true;
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: "jobs, per-job stacks, registered stacks, events, agent epochs",
    sql: `
      CREATE TABLE agent_epochs (
        epoch      INTEGER PRIMARY KEY AUTOINCREMENT,
        started_at INTEGER NOT NULL
      );

      CREATE TABLE jobs (
        id                 TEXT PRIMARY KEY,
        guest_id           TEXT NOT NULL,
        idempotency_key    TEXT NOT NULL UNIQUE,
        phase              TEXT NOT NULL CHECK (phase IN
                             ('queued','quiescing','snapshotting','snapshotted','archiving','done','failed','cancelled')),
        engine             TEXT NOT NULL,
        mode               INTEGER NOT NULL DEFAULT 0,
        consistency        INTEGER NOT NULL DEFAULT 0,
        policy             INTEGER NOT NULL,
        created_at         INTEGER NOT NULL,
        updated_at         INTEGER NOT NULL,
        phase_since        INTEGER NOT NULL,
        snapshot_at        INTEGER,
        finished_at        INTEGER,
        failed_in          TEXT,
        error_code         TEXT NOT NULL DEFAULT '',
        error_message      TEXT NOT NULL DEFAULT '',
        archive_path       TEXT NOT NULL DEFAULT '',
        archive_bytes      INTEGER NOT NULL DEFAULT 0,
        bytes_done         INTEGER NOT NULL DEFAULT 0,
        bytes_total        INTEGER NOT NULL DEFAULT 0,
        quiesce_ms         INTEGER NOT NULL DEFAULT 0,
        snapshot_ms        INTEGER NOT NULL DEFAULT 0,
        archive_ms         INTEGER NOT NULL DEFAULT 0,
        total_ms           INTEGER NOT NULL DEFAULT 0,
        quiesce_timeout_ms INTEGER NOT NULL,
        requested_by       TEXT NOT NULL DEFAULT '',
        epoch              INTEGER NOT NULL
      );
      -- One job per guest that has not ended, enforced by the database itself.
      CREATE UNIQUE INDEX jobs_one_active_per_guest ON jobs (guest_id)
        WHERE phase NOT IN ('done', 'failed', 'cancelled');
      CREATE INDEX jobs_by_guest ON jobs (guest_id, created_at);

      CREATE TABLE job_stacks (
        job_id          TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
        stack           TEXT NOT NULL,
        state           INTEGER NOT NULL,
        reason          TEXT NOT NULL DEFAULT '',
        downtime_ms     INTEGER NOT NULL DEFAULT 0,
        resumed_early   INTEGER NOT NULL DEFAULT 0,
        acknowledged_at INTEGER,
        resumed_at      INTEGER,
        PRIMARY KEY (job_id, stack)
      );

      CREATE TABLE stacks (
        guest_id         TEXT NOT NULL,
        stack            TEXT NOT NULL,
        controller_id    TEXT NOT NULL,
        registered_at    INTEGER NOT NULL,
        lease_expires_at INTEGER NOT NULL,
        PRIMARY KEY (guest_id, stack)
      );

      CREATE TABLE events (
        seq          INTEGER PRIMARY KEY AUTOINCREMENT,
        at           INTEGER NOT NULL,
        job_id       TEXT NOT NULL,
        guest_id     TEXT NOT NULL,
        kind         INTEGER NOT NULL,
        phase        INTEGER NOT NULL,
        mode         INTEGER NOT NULL,
        consistency  INTEGER NOT NULL,
        snapshot_at  INTEGER,
        bytes_done   INTEGER NOT NULL,
        bytes_total  INTEGER NOT NULL,
        stack        TEXT NOT NULL,
        stack_state  INTEGER NOT NULL,
        downtime_ms  INTEGER NOT NULL,
        error_code   TEXT NOT NULL,
        message      TEXT NOT NULL
      );
      CREATE INDEX events_by_job ON events (job_id, seq);
      CREATE INDEX events_by_guest ON events (guest_id, seq);
    `,
  },
  {
    version: 2,
    description: "job_stacks.post_step: outcome of a controller's post steps",
    sql: `ALTER TABLE job_stacks ADD COLUMN post_step TEXT NOT NULL DEFAULT '';`,
  },
  {
    version: 3,
    description: "tokens: per-guest (or per-stack) and operator credentials, the secret stored as its SHA-256",
    sql: `
      CREATE TABLE tokens (
        id          TEXT PRIMARY KEY CHECK (length(id) = 12),
        scope       TEXT NOT NULL CHECK (scope IN ('operator', 'guest', 'stack')),
        guest_id    TEXT,
        stack       TEXT,
        secret_hash BLOB NOT NULL CHECK (length(secret_hash) = 32),
        note        TEXT NOT NULL DEFAULT '',
        created_at  INTEGER NOT NULL,
        expires_at  INTEGER,
        revoked_at  INTEGER,
        CHECK ((scope = 'operator' AND guest_id IS NULL AND stack IS NULL)
            OR (scope = 'guest' AND guest_id IS NOT NULL AND stack IS NULL)
            OR (scope = 'stack' AND guest_id IS NOT NULL AND stack IS NOT NULL))
      );
    `,
  },
  {
    version: 4,
    description: "consistency groups: group_runs, and the group run of each member job and of each event",
    sql: `
      CREATE TABLE group_runs (
        id                 TEXT PRIMARY KEY,
        group_id           TEXT NOT NULL DEFAULT '',
        guest_ids          TEXT NOT NULL,
        idempotency_key    TEXT NOT NULL UNIQUE,
        phase              TEXT NOT NULL CHECK (phase IN
                             ('queued','quiescing','snapshotting','snapshotted','archiving','done','failed','cancelled')),
        consistency        INTEGER NOT NULL DEFAULT 0,
        policy             INTEGER NOT NULL,
        created_at         INTEGER NOT NULL,
        updated_at         INTEGER NOT NULL,
        phase_since        INTEGER NOT NULL,
        quiesced_at        INTEGER,
        snapshot_at        INTEGER,
        finished_at        INTEGER,
        failed_in          TEXT,
        error_code         TEXT NOT NULL DEFAULT '',
        error_message      TEXT NOT NULL DEFAULT '',
        failed_guests      TEXT NOT NULL DEFAULT '',
        quiesce_ms         INTEGER NOT NULL DEFAULT 0,
        snapshot_ms        INTEGER NOT NULL DEFAULT 0,
        archive_ms         INTEGER NOT NULL DEFAULT 0,
        total_ms           INTEGER NOT NULL DEFAULT 0,
        quiesce_timeout_ms INTEGER NOT NULL,
        requested_by       TEXT NOT NULL DEFAULT '',
        epoch              INTEGER NOT NULL
      );
      CREATE INDEX group_runs_by_created ON group_runs (created_at);

      ALTER TABLE jobs ADD COLUMN group_run_id TEXT NOT NULL DEFAULT '';
      CREATE INDEX jobs_by_group_run ON jobs (group_run_id, guest_id);

      ALTER TABLE events ADD COLUMN group_run_id TEXT NOT NULL DEFAULT '';
      CREATE INDEX events_by_group_run ON events (group_run_id, seq);
    `,
  },
  {
    version: 5,
    description: "vzdump_shutdowns: guests vzdump shut down in stop mode, until it started them again (crash cleanup)",
    sql: `
      CREATE TABLE vzdump_shutdowns (
        job_id            TEXT PRIMARY KEY REFERENCES jobs (id) ON DELETE CASCADE,
        vmid              INTEGER NOT NULL,
        vmtype            TEXT NOT NULL CHECK (vmtype IN ('lxc', 'qemu')),
        shutdown_at       INTEGER NOT NULL,
        restart_begun_at  INTEGER,
        restarted_at      INTEGER,
        settled_at        INTEGER,
        outcome           TEXT NOT NULL DEFAULT '',
        noted_at          INTEGER
      );
      CREATE INDEX vzdump_shutdowns_open ON vzdump_shutdowns (vmid, shutdown_at)
        WHERE restarted_at IS NULL AND settled_at IS NULL;
    `,
  },
  {
    version: 6,
    description: "pruned_events: the newest event sequence number retention deleted, agent-wide ('*') and per guest",
    sql: `
      -- Read by WatchEvents: a watcher resuming from an older seq is told that events were pruned.
      CREATE TABLE pruned_events (
        scope       TEXT PRIMARY KEY,
        through_seq INTEGER NOT NULL
      );
    `,
  },
  {
    version: 7,
    description: "jobs.kind: every job row carries its kind (backup now; restore, verify, prune next), and the phase CHECK is per kind",
    rebuildsTables: true,
    sql: `
      CREATE TABLE jobs_by_kind (
        id                 TEXT PRIMARY KEY,
        kind               TEXT NOT NULL DEFAULT 'backup' CHECK (kind IN ('backup', 'restore', 'verify', 'prune')),
        guest_id           TEXT NOT NULL,
        idempotency_key    TEXT NOT NULL UNIQUE,
        phase              TEXT NOT NULL CHECK (length(phase) > 0),
        engine             TEXT NOT NULL,
        mode               INTEGER NOT NULL DEFAULT 0,
        consistency        INTEGER NOT NULL DEFAULT 0,
        policy             INTEGER NOT NULL,
        created_at         INTEGER NOT NULL,
        updated_at         INTEGER NOT NULL,
        phase_since        INTEGER NOT NULL,
        snapshot_at        INTEGER,
        finished_at        INTEGER,
        failed_in          TEXT,
        error_code         TEXT NOT NULL DEFAULT '',
        error_message      TEXT NOT NULL DEFAULT '',
        archive_path       TEXT NOT NULL DEFAULT '',
        archive_bytes      INTEGER NOT NULL DEFAULT 0,
        bytes_done         INTEGER NOT NULL DEFAULT 0,
        bytes_total        INTEGER NOT NULL DEFAULT 0,
        quiesce_ms         INTEGER NOT NULL DEFAULT 0,
        snapshot_ms        INTEGER NOT NULL DEFAULT 0,
        archive_ms         INTEGER NOT NULL DEFAULT 0,
        total_ms           INTEGER NOT NULL DEFAULT 0,
        quiesce_timeout_ms INTEGER NOT NULL,
        requested_by       TEXT NOT NULL DEFAULT '',
        epoch              INTEGER NOT NULL,
        group_run_id       TEXT NOT NULL DEFAULT '',
        -- Each kind's phases; the ended ones (done, failed, cancelled) are common to all kinds.
        CHECK (kind <> 'backup' OR phase IN
          ('queued','quiescing','snapshotting','snapshotted','archiving','done','failed','cancelled'))
      );
      INSERT INTO jobs_by_kind (id, kind, guest_id, idempotency_key, phase, engine, mode, consistency, policy, created_at,
          updated_at, phase_since, snapshot_at, finished_at, failed_in, error_code, error_message, archive_path, archive_bytes,
          bytes_done, bytes_total, quiesce_ms, snapshot_ms, archive_ms, total_ms, quiesce_timeout_ms, requested_by, epoch, group_run_id)
        SELECT id, 'backup', guest_id, idempotency_key, phase, engine, mode, consistency, policy, created_at,
          updated_at, phase_since, snapshot_at, finished_at, failed_in, error_code, error_message, archive_path, archive_bytes,
          bytes_done, bytes_total, quiesce_ms, snapshot_ms, archive_ms, total_ms, quiesce_timeout_ms, requested_by, epoch, group_run_id
        FROM jobs;
      DROP TABLE jobs;
      ALTER TABLE jobs_by_kind RENAME TO jobs;
      -- One job per guest that has not ended, of whatever kind, enforced by the database itself.
      CREATE UNIQUE INDEX jobs_one_active_per_guest ON jobs (guest_id)
        WHERE phase NOT IN ('done', 'failed', 'cancelled');
      CREATE INDEX jobs_by_guest ON jobs (guest_id, created_at);
      CREATE INDEX jobs_by_group_run ON jobs (group_run_id, guest_id);
    `,
  },
  {
    version: 8,
    description: "backups: one row per restore point, written when its job ends done, outliving job history",
    sql: `
      -- No foreign key to jobs: job retention deletes job rows, never the record of a live backup.
      CREATE TABLE backups (
        id              TEXT PRIMARY KEY,
        job_id          TEXT NOT NULL UNIQUE,
        guest_id        TEXT NOT NULL,
        group_run_id    TEXT NOT NULL DEFAULT '',
        engine          TEXT NOT NULL,
        mode            INTEGER NOT NULL,
        consistency     INTEGER NOT NULL,
        snapshot_at     INTEGER,
        created_at      INTEGER NOT NULL,
        location_kind   TEXT NOT NULL CHECK (location_kind IN ('native-archive', 'vzdump-archive', 'pbs-snapshot')),
        location        TEXT NOT NULL CHECK (length(location) > 0),
        size_bytes      INTEGER NOT NULL DEFAULT 0,
        -- [{ "stack": …, "state": … }] as they stood when the job ended.
        stacks          TEXT NOT NULL DEFAULT '[]',
        protected       INTEGER NOT NULL DEFAULT 0 CHECK (protected IN (0, 1)),
        notes           TEXT NOT NULL DEFAULT '',
        removed_at      INTEGER
      );
      CREATE INDEX backups_by_guest ON backups (guest_id, created_at);
    `,
  },
  {
    version: 9,
    description: "list indexes: ListJobs and ListGroups read a page from (created_at, id) instead of sorting every row",
    sql: `
      -- Every guest's jobs, newest first, and one guest's (replaces jobs_by_guest, which lacked the id).
      CREATE INDEX jobs_by_created ON jobs (created_at, id);
      CREATE INDEX jobs_by_guest_created ON jobs (guest_id, created_at, id);
      DROP INDEX jobs_by_guest;
      CREATE INDEX group_runs_by_created_id ON group_runs (created_at, id);
      DROP INDEX group_runs_by_created;
    `,
  },
  {
    version: 10,
    description: "verifications: app-level verification runs of restore points on ephemeral replicas, and each stack's verified marker",
    sql: `
      -- One row per verification run; no foreign key to backups (a removed point keeps its history).
      CREATE TABLE verifications (
        id          TEXT PRIMARY KEY,
        point_id    TEXT NOT NULL,
        guest_id    TEXT NOT NULL,
        phase       TEXT NOT NULL CHECK (phase IN ('restoring', 'checking', 'tearing-down', 'passed', 'failed', 'cancelled')),
        started_at  INTEGER NOT NULL,
        ended_at    INTEGER,
        restore_ms  INTEGER NOT NULL DEFAULT 0,
        check_ms    INTEGER NOT NULL DEFAULT 0,
        teardown_ms INTEGER NOT NULL DEFAULT 0,
        reason      TEXT NOT NULL DEFAULT '',
        -- [{ "stack", "check", "ok", "reason", "durationMs", "evidence" }]
        results     TEXT NOT NULL DEFAULT '[]',
        epoch       INTEGER NOT NULL
      );
      CREATE INDEX verifications_by_point ON verifications (point_id, started_at);
      CREATE INDEX verifications_by_guest ON verifications (guest_id, started_at);
      -- verifiedBackupId: the newest point that passed, per stack.
      CREATE TABLE stack_verified (
        guest_id           TEXT NOT NULL,
        stack              TEXT NOT NULL,
        verified_backup_id TEXT NOT NULL,
        verified_at        INTEGER NOT NULL,
        PRIMARY KEY (guest_id, stack)
      );
    `,
  },
  {
    version: 11,
    description: "schedule_ticks: one row per (schedule, tick) — run, missed or skipped, with the reason",
    sql: `
      -- The primary key is the exactly-once rule: a second attempt for the same tick is refused
      -- by the database, whatever a lock says.
      CREATE TABLE schedule_ticks (
        schedule_id  TEXT NOT NULL,
        tick_at      INTEGER NOT NULL,
        outcome      TEXT NOT NULL CHECK (outcome IN ('running', 'done', 'failed', 'missed', 'skipped')),
        reason       TEXT NOT NULL DEFAULT '',
        node         TEXT NOT NULL DEFAULT '',
        epoch        INTEGER NOT NULL,
        recorded_at  INTEGER NOT NULL,
        started_at   INTEGER,
        ended_at     INTEGER,
        -- The job or group run the tick started, when it started one.
        run_ref      TEXT NOT NULL DEFAULT '',
        PRIMARY KEY (schedule_id, tick_at)
      ) WITHOUT ROWID;
      CREATE INDEX schedule_ticks_by_outcome ON schedule_ticks (outcome, schedule_id);
    `,
  },
  {
    version: 12,
    description: "backups catalog: the archive's SHA-256 and manifest recorded while writing, origin (lull | foreign), the integrity result",
    sql: `
      ALTER TABLE backups ADD COLUMN origin TEXT NOT NULL DEFAULT 'lull' CHECK (origin IN ('lull', 'foreign'));
      ALTER TABLE backups ADD COLUMN sha256 TEXT NOT NULL DEFAULT '';
      ALTER TABLE backups ADD COLUMN file_count INTEGER;
      ALTER TABLE backups ADD COLUMN total_bytes INTEGER;
      ALTER TABLE backups ADD COLUMN integrity_state TEXT CHECK (integrity_state IN ('ok', 'failed', 'unchecked'));
      ALTER TABLE backups ADD COLUMN integrity_detail TEXT NOT NULL DEFAULT '';
      ALTER TABLE backups ADD COLUMN integrity_at INTEGER;
    `,
  },
  {
    version: 13,
    description: "restores: restore runs of points into a directory or to a guest, with their phases, target and outcome",
    sql: `
      CREATE TABLE restores (
        id           TEXT PRIMARY KEY,
        point_id     TEXT NOT NULL,
        guest_id     TEXT NOT NULL,
        phase        TEXT NOT NULL CHECK (phase IN ('checking', 'extracting', 'holding', 'placing', 'restoring-guest', 'done', 'failed', 'cancelled')),
        target_kind  TEXT NOT NULL CHECK (target_kind IN ('dir', 'guest', 'in-place')),
        -- dir: the directory (resolved); guest: the vmid as text, '' until it is known; in-place: the holding job's id
        target       TEXT NOT NULL,
        -- guest: the requested storage and start flag; dir: whether the run created the directory (JSON)
        options      TEXT NOT NULL DEFAULT '{}',
        force        INTEGER NOT NULL DEFAULT 0,
        started_at   INTEGER NOT NULL,
        ended_at     INTEGER,
        bytes_done   INTEGER NOT NULL DEFAULT 0,
        bytes_total  INTEGER NOT NULL DEFAULT 0,
        files        INTEGER NOT NULL DEFAULT 0,
        bytes        INTEGER NOT NULL DEFAULT 0,
        sha256       TEXT NOT NULL DEFAULT '',
        error_code   TEXT NOT NULL DEFAULT '',
        reason       TEXT NOT NULL DEFAULT '',
        check_ms     INTEGER NOT NULL DEFAULT 0,
        extract_ms   INTEGER NOT NULL DEFAULT 0,
        requested_by TEXT NOT NULL DEFAULT '',
        epoch        INTEGER NOT NULL
      );
      CREATE INDEX restores_by_guest ON restores (guest_id, started_at);
    `,
  },
  {
    version: 14,
    description: "notifications: each tick's stable error code; which stale-verification episode of each stack was told",
    sql: `
      ALTER TABLE schedule_ticks ADD COLUMN error_code TEXT NOT NULL DEFAULT '';
      -- One row per (guest, stack) whose stale verification was told; since is the episode: the
      -- verified marker's time it counted from (0: never verified). Deleted when the stack is fresh.
      CREATE TABLE verification_stale_told (
        guest_id  TEXT NOT NULL,
        stack     TEXT NOT NULL,
        since     INTEGER NOT NULL,
        told_at   INTEGER NOT NULL,
        PRIMARY KEY (guest_id, stack)
      ) WITHOUT ROWID;
    `,
  },
  {
    version: 15,
    description: "stop-mode shutdowns: whether vzdump's stop had returned, and who released the guest's lock",
    sql: `
      -- vzdump logged its archive line after stop_vm: the guest was down and vzdump's restart flag set.
      ALTER TABLE vzdump_shutdowns ADD COLUMN stop_returned_at INTEGER;
      -- vzdump's own clean-up (after this agent's TERM) or the crash cleanup removed the guest's
      -- lock: backup: a lock found missing later is not an operator's doing.
      ALTER TABLE vzdump_shutdowns ADD COLUMN released_at INTEGER;
    `,
  },
  {
    version: 16,
    description: "groups across nodes: the coordinator's view of each member job another node runs for a group run",
    sql: `
      -- One row per remote member of a group run this node coordinates: its guest as the run names
      -- it (<guest>@<node>), and the member job as that node last reported it (lull.v1.Job, JSON).
      CREATE TABLE group_remote_members (
        group_run_id TEXT NOT NULL,
        member       TEXT NOT NULL,
        job_json     TEXT NOT NULL,
        updated_at   INTEGER NOT NULL,
        PRIMARY KEY (group_run_id, member)
      );
    `,
  },
];

/** Brings the database to the newest schema; each migration runs in its own transaction. Returns the versions applied. */
export function migrate(db: Database, migrations: readonly Migration[] = MIGRATIONS): number[] {
  const current = db.pragma("user_version", { simple: true }) as number;
  const newest = migrations.at(-1)?.version ?? 0;
  if (current > newest) {
    throw new LullError(
      "LULL_E_INTERNAL",
      `database schema version ${current} is newer than this agent understands (${newest}); refusing to open it`,
    );
  }
  const applied: number[] = [];
  for (const m of migrations) {
    if (m.version <= current) continue;
    // IMMEDIATE, and the version read again inside: a second connection (the `lull-agent token`
    // command next to a starting agent) that migrated first makes this one a no-op.
    // Foreign keys can only be switched outside a transaction.
    const keys = db.pragma("foreign_keys", { simple: true }) as number;
    if (m.rebuildsTables) db.pragma("foreign_keys = OFF");
    let ran: boolean;
    try {
      ran = db
        .transaction(() => {
          if ((db.pragma("user_version", { simple: true }) as number) >= m.version) return false;
          db.exec(m.sql);
          if (m.rebuildsTables) {
            const broken = db.pragma("foreign_key_check") as unknown[];
            if (broken.length > 0) throw new LullError("LULL_E_INTERNAL", `migration ${m.version} would break ${broken.length} foreign keys; nothing was changed`);
          }
          db.pragma(`user_version = ${m.version}`);
          return true;
        })
        .immediate();
    } finally {
      if (m.rebuildsTables) db.pragma(`foreign_keys = ${keys ? "ON" : "OFF"}`);
    }
    if (!ran) continue;
    applied.push(m.version);
  }
  return applied;
}
