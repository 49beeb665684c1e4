// The `quiesce` config section: defaults, and errors that name the key. Plus the small pure parts
// (the outcome line, the psql script and its parsing).
import assert from "node:assert/strict";
import { test } from "node:test";
import { LullError, loadConfig } from "@lull/shared";
import { controllerConfigSchema } from "../config.js";
import { POST_STEP_MAX, summarizeOutcomes, withPostOutcome } from "./outcome.js";
import { postgresSession } from "./postgres.js";
import { postgresStepSchema } from "./schema.js";

const base = { guestId: "demo", stack: "app", driver: { type: "command", start: ["/bin/true"], stop: ["/bin/true"], status: ["/bin/true"] } };

function load(extra: Record<string, unknown>) {
  return loadConfig(controllerConfigSchema, { flags: { ...base, ...extra } });
}

function configError(extra: Record<string, unknown>): string {
  try {
    load(extra);
  } catch (err) {
    assert.ok(err instanceof LullError);
    assert.equal(err.code, "LULL_E_CONFIG_INVALID");
    return err.message;
  }
  assert.fail("expected a config error");
}

test("default: strategy stop, no steps; steps get their default timeouts", () => {
  assert.deepEqual(load({}).quiesce, { strategy: "stop", pre: [], post: [] });
  const c = load({
    quiesce: {
      strategy: "hooks",
      pre: [{ type: "postgres", psql: ["psql", "-d", "app"] }, { type: "command", argv: ["/usr/bin/sync"] }],
      post: [{ type: "command", argv: ["/bin/true"] }],
    },
  });
  const [pg, cmd] = c.quiesce.pre;
  assert.ok(pg?.type === "postgres" && cmd?.type === "command");
  assert.deepEqual(
    { label: pg.label, fast: pg.fast, waitForArchive: pg.waitForArchive, app: pg.applicationName, t: pg.timeoutMs, s: pg.stopTimeoutMs },
    { label: "lull", fast: true, waitForArchive: true, app: "lull-controller", t: 60_000, s: 60_000 },
  );
  assert.equal(cmd.timeoutMs, 30_000);
  assert.equal(c.quiesce.post[0]?.timeoutMs, 30_000);
  assert.ok(Object.isFrozen(c.quiesce.pre));
});

test("errors name the key", () => {
  assert.match(configError({ quiesce: { strategy: "hooks" } }), /quiesce\.pre: strategy hooks needs at least one pre step/);
  assert.match(configError({ quiesce: { strategy: "pause" } }), /quiesce\.strategy: pause needs driver\.pause and driver\.unpause/);
  assert.match(configError({ quiesce: { strategy: "freeze" } }), /quiesce\.strategy:/);
  assert.match(configError({ quiesce: { pre: [{ type: "command", argv: [] }] } }), /quiesce\.pre\.0\.argv: must name a command/);
  assert.match(configError({ quiesce: { pre: [{ type: "command", argv: ["x"], timeoutMs: 0 }] } }), /quiesce\.pre\.0\.timeoutMs:/);
  assert.match(configError({ quiesce: { pre: [{ type: "command", argv: ["x"], shell: "sh -c" }] } }), /quiesce\.pre\.0:.*shell/);
  assert.match(
    configError({ quiesce: { pre: [{ type: "session", argv: ["mongosh"], start: "x", ready: "([", stop: "y", done: "z" }] } }),
    /quiesce\.pre\.0\.ready: must be a valid regular expression/,
  );
  assert.match(configError({ quiesce: { post: [{ type: "postgres", psql: ["psql"] }] } }), /quiesce\.post\.0\.type:/);
  assert.match(configError({ quiesce: { pre: [{ type: "postgres", psql: ["psql"], label: "a\nb" }] } }), /quiesce\.pre\.0\.label: must be one line/);
  assert.match(configError({ quiesce: { pre: [{ type: "postgres", psql: ["psql"], labelFile: "rel/label" }] } }), /quiesce\.pre\.0\.labelFile: must be an absolute path/);
  assert.match(
    configError({ quiesce: { pre: [{ type: "command", name: "a", argv: ["x"] }], post: [{ type: "command", name: "a", argv: ["y"] }] } }),
    /step name a is used twice/,
  );
  // The command driver with pause/unpause may pause.
  const ok = load({ driver: { ...base.driver, pause: ["/bin/true"], unpause: ["/bin/true"] }, quiesce: { strategy: "pause" } });
  assert.equal(ok.quiesce.strategy, "pause");
});

test("the outcome line: ok, failed first, one line, bounded", () => {
  assert.equal(summarizeOutcomes([]), undefined);
  assert.equal(summarizeOutcomes([{ name: "pg", ok: true, durationMs: 35.4 }]), "ok: pg (35 ms)");
  assert.equal(
    summarizeOutcomes([
      { name: "pg", ok: false, durationMs: 3, error: "the session ended\nbefore resume" },
      { name: "notify", ok: true, durationMs: 12 },
    ]),
    "failed: pg: the session ended before resume; ok: notify (12 ms)",
  );
  const long = summarizeOutcomes([{ name: "x", ok: false, durationMs: 1, error: "e".repeat(5_000) }]) ?? "";
  assert.equal(long.length, POST_STEP_MAX);
  assert.equal(withPostOutcome("pre step pg failed: x", "ok: notify (1 ms)"), "pre step pg failed: x; post steps: ok: notify (1 ms)");
  assert.equal(withPostOutcome("r", undefined), "r");
});

test("postgres: psql runs with -X -q -A -t ON_ERROR_STOP=1 and the label as a variable; results are parsed", () => {
  const step = postgresStepSchema.parse({ type: "postgres", psql: ["/usr/bin/psql", "-h", "/run/postgresql", "-d", "app"], label: "nightly" });
  const pg = postgresSession(step, "j-1", "abc");
  assert.deepEqual(pg.spec.argv, [
    "/usr/bin/psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-v", "lull_label=nightly j-1", "-v", "lull_fast=true", "-v", "lull_wait=true",
    "-h", "/run/postgresql", "-d", "app",
  ]);
  assert.equal(pg.spec.env?.PGAPPNAME, "lull-controller");
  assert.match(pg.spec.start, /pg_backup_start\(:'lull_label', :lull_fast\)/);
  assert.match(pg.spec.stop, /pg_backup_stop\(:lull_wait\)/);
  assert.ok(pg.spec.ready.test("0/2000028\nLULL-READY-abc\n"));
  assert.deepEqual(pg.parseStart("0/2000028\nLULL-READY-abc\n"), { startLsn: "0/2000028" });
  const labelFile = "START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\nLABEL: nightly j-1\nSTART TIMELINE: 1\n";
  const stopped = pg.parseStop(`0/2000100|${Buffer.from(labelFile).toString("hex")}\nLULL-DONE-abc\n`);
  assert.deepEqual(stopped, { stopLsn: "0/2000100", labelFile, label: "nightly j-1" });
  assert.throws(() => pg.parseStop("LULL-DONE-abc\n"), /pg_backup_stop returned no result/);
});
