// Table test of vzdump's progress reducer: every stage × every input that matters, for a QEMU and
// an LXC guest in snapshot mode and a QEMU guest vzdump backs up in suspend mode; then the stage a
// failure is classified by, and whole runs in the order vzdump produces them.
import { strict as assert } from "node:assert";
import { describe, it } from "node:test";
import { Consistency, SnapshotMode } from "@lull/proto";
import type { HookMessage, HookPhase, VzdumpMode } from "../../hook/hook-protocol.js";
import {
  archiveOf,
  archivePending,
  failureCode,
  failureLine,
  initialProgress,
  progress,
  type ProgressAction,
  type ProgressContext,
  type ProgressInput,
  type ProgressState,
  type Stage,
} from "./progress.js";

const T0 = Date.parse("2026-11-22T10:00:00Z");
const STAGES: readonly Stage[] = ["waiting", "snapshotting", "snapshotted", "archiving"];
const QEMU: ProgressContext = { vmid: 100, vmtype: "qemu", requestedMode: "snapshot" };
const LXC: ProgressContext = { vmid: 101, vmtype: "lxc", requestedMode: "snapshot" };
const ARCHIVE = "/vz/dump/vzdump-lxc-101-2026_11_22-10_00_00.tar.zst";

/** A state as far as `stage`, consistent with how it got there (quiesced once snapshotting). */
function inStage(stage: Stage, patch: Partial<ProgressState> = {}): ProgressState {
  return { ...initialProgress(), stage, mode: "snapshot", quiesced: stage !== "waiting", ...patch };
}

function hook(phase: HookPhase, mode: VzdumpMode = "snapshot", env: HookMessage["env"] = {}): ProgressInput {
  return { type: "hook", message: { v: 1, phase, mode, vmid: 100, env, pids: [] } };
}

function line(text: string): ProgressInput {
  return { type: "line", line: text, at: T0 + 7 };
}

const MODE_NAMES: Record<number, string> = {
  [SnapshotMode.SNAPSHOT_MODE_SNAPSHOT]: "snapshot",
  [SnapshotMode.SNAPSHOT_MODE_SUSPEND]: "suspend",
  [SnapshotMode.SNAPSHOT_MODE_STOP]: "stop",
};

/** `type`, `type:mode`, `record:what` or `end:ok`, in order. */
function summary(actions: readonly ProgressAction[]): string[] {
  return actions.map((a) => {
    if (a.type === "snapshotting" || a.type === "archiving") return `${a.type}:${MODE_NAMES[a.mode]}`;
    if (a.type === "record") return `record:${a.what}`;
    if (a.type === "end") return `end:${a.ok}`;
    return a.type;
  });
}

/** [stage after, actions] for each stage the run is in before the input, in STAGES order. */
type Row = [Stage, string[]];
interface Case {
  input: ProgressInput;
  ctx: ProgressContext;
  /** The state before, per stage (default: inStage). */
  before?: (stage: Stage) => ProgressState;
  expect: [Row, Row, Row, Row];
}

const same = (actions: string[] = []): [Row, Row, Row, Row] => [
  ["waiting", actions],
  ["snapshotting", actions],
  ["snapshotted", actions],
  ["archiving", actions],
];

const ENTER_ARCHIVING_QEMU = (last: string[]): [Row, Row, Row, Row] => [
  ["archiving", ["skip-quiesce", "snapshotting:snapshot", "archiving:snapshot", ...last]],
  ["archiving", ["archiving:snapshot", ...last]],
  ["archiving", ["archiving:snapshot", ...last]],
  ["archiving", last],
];

const CASES: Record<string, Case> = {
  // Hook messages.
  "backup-start in the mode asked for": { ctx: QEMU, input: hook("backup-start"), expect: same() },
  "backup-start in another mode (a note says why)": { ctx: QEMU, input: hook("backup-start", "suspend"), expect: same(["note"]) },
  "pre-stop: quiesce first": { ctx: QEMU, input: hook("pre-stop"), expect: same(["quiesce"]) },
  "pre-restart of a VM in snapshot mode": { ctx: QEMU, input: hook("pre-restart"), expect: same() },
  "pre-restart in stop mode is recorded": { ctx: QEMU, input: hook("pre-restart", "stop"), expect: same(["record:restartBegun"]) },
  "post-restart in stop mode is recorded": { ctx: QEMU, input: hook("post-restart", "stop"), expect: same(["record:restarted"]) },
  "post-restart in snapshot mode": { ctx: QEMU, input: hook("post-restart"), expect: same() },
  "backup-end": { ctx: QEMU, input: hook("backup-end", "snapshot", { TARGET: ARCHIVE }), expect: same() },
  "backup-abort": { ctx: QEMU, input: hook("backup-abort"), expect: same(["note"]) },
  "log-end": { ctx: QEMU, input: hook("log-end", "snapshot", { LOGFILE: "/var/log/vzdump/qemu-100.log" }), expect: same(["note", "end:true"]) },
  "log-end after backup-abort": {
    ctx: QEMU,
    input: hook("log-end"),
    before: (stage) => inStage(stage, { aborted: true }),
    expect: same(["end:false"]),
  },
  "a job phase (job-start)": { ctx: QEMU, input: hook("job-start"), expect: same() },
  // The run's async steps.
  "quiesce answered app-consistent": { ctx: QEMU, input: { type: "quiesced", consistency: Consistency.CONSISTENCY_APP }, expect: same() },
  "quiesce answered crash-consistent": { ctx: QEMU, input: { type: "quiesced", consistency: Consistency.CONSISTENCY_CRASH }, expect: same(["note"]) },
  "pre-stop answered ok": {
    ctx: QEMU,
    input: { type: "pre-stop-done", at: T0 + 3 },
    before: (stage) => inStage(stage, { quiesced: true }),
    expect: [["snapshotting", ["snapshotting:snapshot"]], ["snapshotting", []], ["snapshotted", []], ["archiving", []]],
  },
  "LXC pre-restart in snapshot mode: check the snapshot": {
    ctx: LXC,
    input: hook("pre-restart"),
    expect: [["waiting", ["check-lxc-snapshot"]], ["snapshotting", ["check-lxc-snapshot"]], ["snapshotted", []], ["archiving", []]],
  },
  "LXC pre-restart after `snapshot create failed`": {
    ctx: LXC,
    input: hook("pre-restart"),
    before: (stage) => inStage(stage, { snapshotFailed: true }),
    expect: same(),
  },
  "LXC snapshot committed": {
    ctx: LXC,
    input: { type: "lxc-snapshot", committed: true, at: T0 + 9 },
    expect: [
      ["snapshotted", ["skip-quiesce", "snapshotting:snapshot", "snapshotted"]],
      ["snapshotted", ["snapshotted"]],
      ["snapshotted", []],
      ["archiving", []],
    ],
  },
  "LXC snapshot not committed": { ctx: LXC, input: { type: "lxc-snapshot", committed: false, at: T0 + 9 }, expect: same(["note"]) },
  "LXC snapshot check failed": { ctx: LXC, input: { type: "lxc-snapshot", committed: false, error: "pct exited 2", at: T0 + 9 }, expect: same(["note", "note"]) },
  // vzdump's output lines (each is a note but the progress ones).
  "`backup mode:` line": { ctx: QEMU, input: line("INFO: backup mode: snapshot"), expect: same(["note"]) },
  "`create storage snapshot` line": { ctx: LXC, input: line("INFO: create storage snapshot 'vzdump'"), expect: same(["note"]) },
  "`snapshot create failed` line": { ctx: LXC, input: line("snapshot create failed: starting cleanup"), expect: same(["note"]) },
  "archive line, VM in snapshot mode: archiving waits for snapshotted": {
    ctx: QEMU,
    input: line(`INFO: creating vzdump archive '${ARCHIVE}'`),
    expect: [["waiting", ["note"]], ["snapshotting", ["note"]], ["archiving", ["note", "archiving:snapshot"]], ["archiving", ["note"]]],
  },
  "archive line, container: archiving, its .tar.dat watched": {
    ctx: LXC,
    input: line(`INFO: creating vzdump archive '${ARCHIVE}'`),
    expect: [
      ["archiving", ["note", "skip-quiesce", "snapshotting:snapshot", "archiving:snapshot", "watch-partial"]],
      ["archiving", ["note", "archiving:snapshot", "watch-partial"]],
      ["archiving", ["note", "archiving:snapshot", "watch-partial"]],
      ["archiving", ["note"]],
    ],
  },
  "archive line, VM in stop mode: archiving at once, stop_vm's return recorded": {
    ctx: QEMU,
    input: line(`INFO: creating vzdump archive '${ARCHIVE}'`),
    before: (stage) => inStage(stage, { mode: "stop" }),
    expect: [
      ["archiving", ["note", "skip-quiesce", "snapshotting:stop", "archiving:stop", "record:stopReturned"]],
      ["archiving", ["note", "archiving:stop", "record:stopReturned"]],
      ["archiving", ["note", "archiving:stop", "record:stopReturned"]],
      ["archiving", ["note", "record:stopReturned"]],
    ],
  },
  "archive line, VM in suspend mode: archiving at once": {
    ctx: QEMU,
    input: line(`INFO: creating vzdump archive '${ARCHIVE}'`),
    before: (stage) => inStage(stage, { mode: "suspend" }),
    expect: [
      ["archiving", ["note", "skip-quiesce", "snapshotting:suspend", "archiving:suspend"]],
      ["archiving", ["note", "archiving:suspend"]],
      ["archiving", ["note", "archiving:suspend"]],
      ["archiving", ["note"]],
    ],
  },
  "`started backup task`, VM in snapshot mode: snapshotted": {
    ctx: QEMU,
    input: line("INFO: started backup task '8d3f4a2e-0000-4000-8000-000000000000'"),
    expect: [
      ["snapshotted", ["note", "skip-quiesce", "snapshotting:snapshot", "snapshotted"]],
      ["snapshotted", ["note", "snapshotted"]],
      ["snapshotted", ["note"]],
      ["archiving", ["note"]],
    ],
  },
  "`started backup task` with the archive pending: snapshotted, then archiving": {
    ctx: QEMU,
    input: line("INFO: started backup task '8d3f4a2e-0000-4000-8000-000000000000'"),
    before: (stage) => inStage(stage, { archivePath: ARCHIVE }),
    expect: [
      ["archiving", ["note", "skip-quiesce", "snapshotting:snapshot", "snapshotted", "archiving:snapshot"]],
      ["archiving", ["note", "snapshotted", "archiving:snapshot"]],
      ["snapshotted", ["note"]],
      ["archiving", ["note"]],
    ],
  },
  "`started backup task` in suspend mode with the archive pending: archiving": {
    ctx: QEMU,
    input: line("INFO: started backup task '8d3f4a2e-0000-4000-8000-000000000000'"),
    before: (stage) => inStage(stage, { mode: "suspend", archivePath: ARCHIVE }),
    expect: [
      ["archiving", ["note", "skip-quiesce", "snapshotting:suspend", "archiving:suspend"]],
      ["archiving", ["note", "archiving:suspend"]],
      ["archiving", ["note", "archiving:suspend"]],
      ["archiving", ["note"]],
    ],
  },
  "`started backup task` in suspend mode, no archive yet": {
    ctx: QEMU,
    input: line("INFO: started backup task '8d3f4a2e-0000-4000-8000-000000000000'"),
    before: (stage) => inStage(stage, { mode: "suspend" }),
    expect: same(["note"]),
  },
  "a progress line: archiving, with its figures (no note)": {
    ctx: QEMU,
    input: line("INFO:  50% (512.0 MiB of 1.0 GiB) in 2s, read: 256.0 MiB/s, write: 250.0 MiB/s"),
    expect: ENTER_ARCHIVING_QEMU(["progress"]),
  },
  "a skipped guest-agent freeze": {
    ctx: QEMU,
    input: line("INFO: skipping guest-agent 'fs-freeze', agent configured but not running?"),
    expect: same(["note", "note"]),
  },
  "a failed guest-agent freeze": { ctx: QEMU, input: line("ERROR: VM 100 qmp command 'guest-fsfreeze-freeze' failed - got timeout"), expect: same(["note", "note"]) },
  "`Backup of VM … failed`": { ctx: QEMU, input: line("ERROR: Backup of VM 100 failed - no space"), expect: same(["note"]) },
  "another ERROR line": { ctx: QEMU, input: line("ERROR: something else"), expect: same(["note"]) },
  "any other line": { ctx: QEMU, input: line("INFO: status = running"), expect: same(["note"]) },
  // Sizes.
  "the .tar.dat grew": { ctx: LXC, input: { type: "partial-size", bytes: 4096 }, expect: same(["progress"]) },
  "the .tar.dat did not grow": {
    ctx: LXC,
    input: { type: "partial-size", bytes: 4096 },
    before: (stage) => inStage(stage, { partialBytes: 4096 }),
    expect: same(),
  },
  "the archive is written": { ctx: QEMU, input: { type: "archive-written", bytes: 1234 }, expect: ENTER_ARCHIVING_QEMU(["progress"]) },
};

describe("vzdump progress reducer", () => {
  for (const [name, c] of Object.entries(CASES)) {
    it(name, () => {
      STAGES.forEach((stage, i) => {
        const before = (c.before ?? inStage)(stage);
        const { state, actions } = progress(before, c.input, c.ctx);
        const [stageAfter, expected] = c.expect[i]!;
        assert.deepEqual({ stage: state.stage, actions: summary(actions) }, { stage: stageAfter, actions: expected }, `from ${stage}`);
      });
    });
  }

  it("never changes the state it is given", () => {
    const before = Object.freeze(inStage("snapshotting", { tail: Object.freeze(["a"]) as string[] }));
    const { state } = progress(before, line("ERROR: Backup of VM 100 failed - boom"), QEMU);
    assert.deepEqual(before.tail, ["a"]);
    assert.deepEqual(state.tail, ["a", "ERROR: Backup of VM 100 failed - boom"]);
    assert.deepEqual(state.failures, ["Backup of VM 100 failed - boom"]);
  });

  it("keeps what the inputs carry: mode, TARGET, archive path, snapshot times, the last lines", () => {
    let s = initialProgress();
    const feed = (input: ProgressInput, ctx = LXC) => (s = progress(s, input, ctx).state);
    feed(hook("backup-start", "suspend", { TARGET: "/t.tar.zst" }));
    assert.equal(s.mode, "suspend");
    assert.equal(s.target, "/t.tar.zst");
    feed(line("INFO: backup mode: stop"));
    assert.equal(s.mode, "stop");
    feed(line("INFO: backup mode: bogus"));
    assert.equal(s.mode, "stop", "an unknown mode is not taken");
    feed(hook("pre-stop", "snapshot"));
    assert.equal(s.mode, "stop", "pre-stop does not override a mode vzdump already said");
    feed(line("INFO: create storage snapshot 'vzdump'"));
    assert.equal(s.storageSnapshotAt, T0 + 7);
    feed(hook("backup-abort"));
    assert.equal(s.aborted, true);
    for (let i = 0; i < 250; i++) feed(line(`INFO: line ${i}`));
    assert.equal(s.tail.length, 200);
    assert.equal(s.tail.at(-1), "INFO: line 249");
    assert.equal(archiveOf(s), "/t.tar.zst");
    assert.equal(archiveOf({ ...s, target: undefined, archivePath: ARCHIVE }), ARCHIVE);
  });

  it("marks a confirmed LXC snapshot at the storage snapshot, else at pre-stop's answer, else now", () => {
    const at = (patch: Partial<ProgressState>) => {
      const { actions } = progress(inStage("snapshotting", patch), { type: "lxc-snapshot", committed: true, at: T0 + 9 }, LXC);
      const snapshotted = actions.find((a) => a.type === "snapshotted");
      return snapshotted?.type === "snapshotted" ? snapshotted.at : undefined;
    };
    assert.equal(at({ storageSnapshotAt: T0 + 1, preStopDoneAt: T0 + 2 }), T0 + 1);
    assert.equal(at({ preStopDoneAt: T0 + 2 }), T0 + 2);
    assert.equal(at({}), T0 + 9);
  });

  it("names a guest that was not running when snapshotting begins without a pre-stop", () => {
    const { actions } = progress(inStage("waiting", { mode: "stop" }), { type: "archive-written", bytes: 1 }, QEMU);
    assert.deepEqual(actions[0], { type: "skip-quiesce", reason: "guest 100 is not running (vzdump stop mode, no pre-stop)" });
    assert.deepEqual(actions[1], { type: "snapshotting", mode: SnapshotMode.SNAPSHOT_MODE_STOP });
  });

  it("classifies a failure by its message, then by how far the run got", () => {
    const table: [Stage, VzdumpMode, string, string][] = [
      ["archiving", "snapshot", "write: No space left on device", "LULL_E_NO_SPACE"],
      ["waiting", "snapshot", "Disk quota exceeded", "LULL_E_NO_SPACE"],
      ["waiting", "snapshot", "CT 101 is locked (backup)", "LULL_E_GUEST_BUSY"],
      ["snapshotting", "snapshot", "can't acquire lock '/var/run/vzdump.lock'", "LULL_E_GUEST_BUSY"],
      ["archiving", "snapshot", "boom", "LULL_E_ARCHIVE_FAILED"],
      ["archiving", "suspend", "boom", "LULL_E_ARCHIVE_FAILED"],
      ["snapshotted", "snapshot", "boom", "LULL_E_ARCHIVE_FAILED"],
      ["snapshotting", "snapshot", "boom", "LULL_E_SNAPSHOT_FAILED"],
      ["snapshotting", "suspend", "boom", "LULL_E_COMMAND_FAILED"],
      ["waiting", "snapshot", "boom", "LULL_E_COMMAND_FAILED"],
    ];
    for (const [stage, mode, message, code] of table) {
      assert.equal(failureCode(inStage(stage, { mode }), message), code, `${stage} ${mode} "${message}"`);
    }
  });

  it("reports the first guest failure, else the first ERROR, else the last line", () => {
    const base = inStage("archiving", { tail: ["INFO: a", "INFO: last"] });
    assert.equal(failureLine(base), "INFO: last");
    assert.equal(failureLine({ ...base, errors: ["first error", "second"] }), "first error");
    assert.equal(failureLine({ ...base, errors: ["first error"], failures: ["Backup of VM 100 failed - x"] }), "Backup of VM 100 failed - x");
    assert.equal(failureLine(initialProgress()), undefined);
  });

  it("runs a VM in snapshot mode in vzdump's order: snapshotted at `started backup task`, archiving after", () => {
    let s = initialProgress();
    const all: string[] = [];
    for (const input of [
      hook("backup-start"),
      hook("pre-stop"),
      { type: "quiesced", consistency: Consistency.CONSISTENCY_APP } as ProgressInput,
      { type: "pre-stop-done", at: T0 + 2 } as ProgressInput,
      line(`INFO: creating vzdump archive '${ARCHIVE}'`),
      line("INFO: started backup task '8d3f4a2e-0000-4000-8000-000000000000'"),
      line("INFO:  50% (512.0 MiB of 1.0 GiB) in 2s, read: 256.0 MiB/s, write: 250.0 MiB/s"),
      hook("backup-end", "snapshot", { TARGET: ARCHIVE }),
      hook("log-end"),
    ]) {
      const step = progress(s, input, QEMU);
      s = step.state;
      all.push(...summary(step.actions).filter((a) => a !== "note"));
    }
    assert.deepEqual(all, ["quiesce", "snapshotting:snapshot", "snapshotted", "archiving:snapshot", "progress", "end:true"]);
    assert.equal(s.stage, "archiving");
    assert.equal(archivePending(s), false);
  });
});
