// The restorer in process, over a real ledger, real tar/zstd and the fake Proxmox toolbox:
// recovery after a crash in each phase (before placing: the staging directory goes and the
// target is as it was; in placing: the run is finished wherever it stopped), cancel before and refusal after
// the point of no return, and a vzdump point restored to a guest — next free id, an existing
// guest refused without force, a half-created guest destroyed by the next start.
import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { Consistency, Phase, SnapshotMode, StackState } from "@lull/proto";
import { createExecaLauncher, silentLogger, systemClock, type Launcher, LullError } from "@lull/shared";
import { writeArchive } from "../archive/tar-zst.js";
import { pointIdOf } from "../backups/restore-point.js";
import { EventBus } from "../events/bus.js";
import { JobLedger } from "../jobs/ledger.js";
import { newJobId } from "../jobs/job-id.js";
import { JobStore } from "../jobs/store.js";
import { startFakePveNode, type FakePveNode } from "../pve/testing/fake-pve.js";
import { guestRestorePort } from "./daemon-part.js";
import { newRestoreRecord, type RestoreRecord } from "./machine.js";
import { Restorer, STAGING_PREFIX, type HoldJobs, type RestorerDeps } from "./restorer.js";
import { RestoreStore } from "./store.js";

describe("restorer", () => {
  let dir: string;
  let store: JobStore;
  let jobs: JobLedger;
  let nativePoint: string;
  let n = 0;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "lull-restorer-"));
    store = JobStore.open(join(dir, "agent.db"));
    jobs = new JobLedger({ store, bus: new EventBus(silentLogger()), log: silentLogger(), clock: systemClock });
    mkdirSync(join(dir, "vol"));
    writeFileSync(join(dir, "vol", "data.txt"), "restored\n");
    const jobId = newJobId(Date.now());
    const a = await writeArchive({ archiveDir: join(dir, "archives"), prefix: "lull-", guestId: "g1", jobId, zstdLevel: 1, takenAt: Date.now(), volumes: [{ name: "vol", readPath: join(dir, "vol") }], live: false, signal: new AbortController().signal });
    nativePoint = pointIdOf(jobId);
    jobs.ledger.commit(() =>
      jobs.backups.insert({
        id: nativePoint, jobId, guestId: "g1", groupRunId: "", engine: "native", mode: SnapshotMode.SNAPSHOT_MODE_COPY, consistency: Consistency.CONSISTENCY_CRASH,
        snapshotAt: new Date(), createdAt: new Date(), locationKind: "native-archive", location: a.archivePath, sizeBytes: a.archiveBytes, stacks: [], protected: false, notes: "",
        origin: "lull", sha256: a.sha256, manifest: a.manifest, integrity: undefined,
      }),
    );
  });
  after(() => {
    store?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  function restorer(extra: Partial<RestorerDeps> = {}): Restorer {
    return new Restorer({ store: new RestoreStore(store.database), backups: jobs.backups, ledger: jobs.ledger, guarded: [{ key: "archiveDir", path: join(dir, "archives") }], log: silentLogger(), clock: systemClock, ...extra });
  }

  /** A run as a crashed agent left it: its row in `phase`. */
  function leftOpen(phase: RestoreRecord["phase"], target: string): RestoreRecord {
    const r = { ...newRestoreRecord({ id: `r-20261203T000000-${String(++n).padStart(6, "0")}`, pointId: nativePoint, guestId: "g1", target: { kind: "dir", path: target, created: false }, force: true, requestedBy: "test" }, Date.now()), phase };
    new RestoreStore(store.database).insert(r);
    return r;
  }

  it("recovery before placing removes the staging directory and leaves the target as it was", async () => {
    const target = join(dir, "t-extracting");
    const open = leftOpen("extracting", target);
    mkdirSync(join(target, `${STAGING_PREFIX}${open.id}`, "vol"), { recursive: true });
    writeFileSync(join(target, `${STAGING_PREFIX}${open.id}`, "vol", "half"), "x");
    writeFileSync(join(target, "mine"), "operator's\n");
    const [r] = await restorer().recover();
    assert.equal(r!.phase, "failed");
    assert.equal(r!.errorCode, "LULL_E_AGENT_RESTARTED");
    assert.match(r!.reason, /stopped during extracting; what it had extracted was removed .* is as it was/);
    assert.deepEqual(readdirSync(target), ["mine"]);
  });

  it("recovery in placing finishes the run wherever the crash left it", async () => {
    // Placing had just begun: the operator's old entry is still there, the copy still staged.
    const begun = join(dir, "t-begun");
    const b = leftOpen("placing", begun);
    mkdirSync(join(begun, `${STAGING_PREFIX}${b.id}`, "vol"), { recursive: true });
    writeFileSync(join(begun, `${STAGING_PREFIX}${b.id}`, "vol", "data.txt"), "restored\n");
    writeFileSync(join(begun, "old"), "replaced\n");
    // Half placed: the old entries are aside, `a` was moved in before the crash, `b` is still ready.
    const half = join(dir, "t-half");
    const h = leftOpen("placing", half);
    mkdirSync(join(half, `${STAGING_PREFIX}${h.id}-old`), { recursive: true });
    writeFileSync(join(half, `${STAGING_PREFIX}${h.id}-old`, "old"), "replaced\n");
    mkdirSync(join(half, `${STAGING_PREFIX}${h.id}-ready`, "b"), { recursive: true });
    mkdirSync(join(half, "a"));
    const recovered = await restorer().recover();
    assert.deepEqual(recovered.map((r) => r.phase), ["done", "done"]);
    assert.deepEqual(readdirSync(begun), ["vol"]);
    assert.equal(readFileSync(join(begun, "vol", "data.txt"), "utf8"), "restored\n");
    assert.deepEqual(readdirSync(half).sort(), ["a", "b"]);
  });

  it("a cancel before the point of no return removes what was extracted; after it, cancel is refused", async () => {
    let release: () => void = () => undefined;
    let reached: (r: RestoreRecord) => void = () => undefined;
    const gate = (phase: string) => ({
      afterPhase: (r: RestoreRecord) => {
        if (r.phase !== phase) return;
        reached(r);
        return new Promise<void>((resolve) => (release = resolve));
      },
    });
    const target = join(dir, "t-cancel");
    const early = restorer(gate("extracting"));
    const seen = new Promise<RestoreRecord>((resolve) => (reached = resolve));
    const run = await early.start({ guestId: "g1", pointId: nativePoint, target: { kind: "dir", path: target }, force: false, requestedBy: "test" });
    await seen;
    early.cancel(run.id, "changed my mind");
    release();
    const cancelled = await early.settled(run.id);
    assert.equal(cancelled.phase, "cancelled");
    assert.equal(existsSync(target), false, "the directory it created is gone again");

    const late = restorer(gate("placing"));
    const seenLate = new Promise<RestoreRecord>((resolve) => (reached = resolve));
    const run2 = await late.start({ guestId: "g1", pointId: nativePoint, target: { kind: "dir", path: target }, force: false, requestedBy: "test" });
    await seenLate;
    assert.throws(() => late.cancel(run2.id, "too late"), (err: LullError) => err.code === "LULL_E_WRONG_PHASE");
    release();
    assert.equal((await late.settled(run2.id)).phase, "done");
    assert.equal(readFileSync(join(target, "vol", "data.txt"), "utf8"), "restored\n");
  });

  describe("in place", () => {
    const volume = () => join(dir, "vol");
    const holdsWith = (live: string[], finished: string[] = []): HoldJobs => ({
      start: () => {
        throw new Error("not started in these tests");
      },
      get: () => undefined,
      cancel: async () => undefined,
      finish: (jobId) => void finished.push(jobId),
      liveStacks: () => live,
    });
    const inPlace = (holds: HoldJobs) => restorer({ holds, nativeGuests: new Map([["g1", { volumes: [{ name: "vol", path: volume() }] }]]) });

    it("is refused when no controller holds a stack of the guest, unless forced", async () => {
      await assert.rejects(
        inPlace(holdsWith([])).start({ guestId: "g1", pointId: nativePoint, target: { kind: "in-place" }, force: false, requestedBy: "test" }),
        (err: LullError) => err.code === "LULL_E_INVALID_ARGUMENT" && /no controller holds a stack of guest g1.*--force/.test(err.message),
      );
      // Forced, the check lets it through to creating the job (this fake refuses to).
      await assert.rejects(inPlace(holdsWith([])).start({ guestId: "g1", pointId: nativePoint, target: { kind: "in-place" }, force: true, requestedBy: "test" }), /not started in these tests/);
      await assert.rejects(
        restorer({ holds: holdsWith(["app"]) }).start({ guestId: "g1", pointId: nativePoint, target: { kind: "in-place" }, force: false, requestedBy: "test" }),
        /no native guest of this agent/,
      );
    });

    it("an agent stopping during holding ends the restore's job and leaves the volume as it was", async () => {
      let phase = Phase.PHASE_QUEUED;
      const cancelled: string[] = [];
      const holds: HoldJobs = {
        ...holdsWith(["app"]),
        start: (guestId) => ({ id: "j-stopping", guestId, phase } as never),
        get: (jobId) => ({ id: jobId, guestId: "g1", phase, stacks: [], errorCode: "", errorMessage: "" } as never),
        cancel: async (jobId) => {
          cancelled.push(jobId);
          phase = Phase.PHASE_CANCELLED;
        },
      };
      const r = inPlace(holds);
      const run = await r.start({ guestId: "g1", pointId: nativePoint, target: { kind: "in-place" }, force: false, requestedBy: "test" });
      for (let i = 0; i < 100 && r.get(run.id).phase !== "holding"; i++) await new Promise((res) => setTimeout(res, 50));
      assert.equal(r.get(run.id).phase, "holding");
      assert.ok(existsSync(join(volume(), `${STAGING_PREFIX}${run.id}`)), "extracted beside the volume");
      await r.close();
      assert.deepEqual(cancelled, ["j-stopping"]);
      assert.equal(r.get(run.id).phase, "cancelled");
      assert.deepEqual(readdirSync(volume()), ["data.txt"], "the staged copy is gone, the volume as it was");
    });

    it("a stack its controller resumed before placing fails the restore and leaves the volume as it was", async () => {
      // The fake runs the restore's engine itself, as the job runner would, with a barrier that passes.
      let phase = Phase.PHASE_QUEUED;
      let errorMessage = "";
      const job = () => ({ id: "j-resumed", guestId: "g1", phase, errorCode: phase === Phase.PHASE_FAILED ? "LULL_E_RESTORE_FAILED" : "", errorMessage, stacks: [{ stack: "app", state: StackState.STACK_STATE_RESUMED }] }) as never;
      const hooks = { quiesce: async () => 0, snapshotting: () => undefined, snapshotted: () => undefined, archiving: () => undefined, progress: () => undefined, note: () => undefined };
      const holds: HoldJobs = {
        ...holdsWith(["app"]),
        start: (_guestId, _id, _by, engine) => {
          void engine.run({ jobId: "j-resumed", guest: {} as never, hooks: hooks as never, signal: new AbortController().signal, log: silentLogger() }).then(
            () => (phase = Phase.PHASE_DONE),
            (err: Error) => {
              errorMessage = err.message;
              phase = Phase.PHASE_FAILED;
            },
          );
          return job();
        },
        get: () => job(),
      };
      const r = inPlace(holds);
      const run = await r.start({ guestId: "g1", pointId: nativePoint, target: { kind: "in-place" }, force: false, requestedBy: "test" });
      const ended = await r.settled(run.id);
      assert.equal(ended.phase, "failed");
      assert.equal(ended.errorCode, "LULL_E_RESTORE_FAILED");
      assert.match(ended.reason, /stack app is not held stopped any more \(resumed\).*resumeDeadlineMs.*the volumes were left as they were/);
      assert.deepEqual(readdirSync(volume()), ["data.txt"], "nothing staged is left, nothing replaced");
      assert.equal(readFileSync(join(volume(), "data.txt"), "utf8"), "restored\n");
    });

    it("recovery before placing removes what was extracted beside the volume; in placing it finishes and ends the job done", async () => {
      const rs = new RestoreStore(store.database);
      const early = { ...newRestoreRecord({ id: "r-20261203T000002-000001", pointId: nativePoint, guestId: "g1", target: { kind: "in-place", jobId: "j-hold1" }, force: false, requestedBy: "test" }, Date.now()), phase: "holding" as const };
      rs.insert(early);
      mkdirSync(join(volume(), `${STAGING_PREFIX}${early.id}`));
      writeFileSync(join(volume(), `${STAGING_PREFIX}${early.id}`, "data.txt"), "staged\n");
      const finished: string[] = [];
      let [r] = await inPlace(holdsWith(["app"], finished)).recover();
      assert.equal(r!.phase, "failed");
      assert.match(r!.reason, /stopped during holding; what it had extracted beside the volumes was removed/);
      assert.deepEqual(readdirSync(volume()).sort(), ["data.txt"]);
      assert.equal(readFileSync(join(volume(), "data.txt"), "utf8"), "restored\n", "the volume as it was");

      const late = { ...newRestoreRecord({ id: "r-20261203T000002-000002", pointId: nativePoint, guestId: "g1", target: { kind: "in-place", jobId: "j-hold2" }, force: false, requestedBy: "test" }, Date.now()), phase: "placing" as const };
      rs.insert(late);
      writeFileSync(join(volume(), "written-after-the-point"), "x");
      mkdirSync(join(volume(), `${STAGING_PREFIX}${late.id}`));
      writeFileSync(join(volume(), `${STAGING_PREFIX}${late.id}`, "data.txt"), "from the point\n");
      [r] = await inPlace(holdsWith(["app"], finished)).recover();
      assert.equal(r!.phase, "done");
      assert.deepEqual(readdirSync(volume()), ["data.txt"]);
      assert.equal(readFileSync(join(volume(), "data.txt"), "utf8"), "from the point\n");
      writeFileSync(join(volume(), "data.txt"), "restored\n");
    });

    it("recovery resumes a volume's replacement wherever the crash left it, losing neither side", async () => {
      const rs = new RestoreStore(store.database);
      const run = { ...newRestoreRecord({ id: "r-20261203T000002-000003", pointId: nativePoint, guestId: "g1", target: { kind: "in-place", jobId: "j-hold3" }, force: false, requestedBy: "test" }, Date.now()), phase: "placing" as const };
      rs.insert(run);
      // The crash came in step 2: the old entries are aside, `a` of the point was moved in, `b` not yet.
      const name = `${STAGING_PREFIX}${run.id}`;
      rmSync(join(volume(), "data.txt"));
      mkdirSync(join(volume(), `${name}-old`));
      writeFileSync(join(volume(), `${name}-old`, "old-entry"), "old\n");
      mkdirSync(join(volume(), `${name}-ready`));
      writeFileSync(join(volume(), "a"), "point a\n");
      writeFileSync(join(volume(), `${name}-ready`, "b"), "point b\n");
      const [r] = await inPlace(holdsWith(["app"])).recover();
      assert.equal(r!.phase, "done");
      assert.deepEqual(readdirSync(volume()).sort(), ["a", "b"]);
      assert.equal(readFileSync(join(volume(), "b"), "utf8"), "point b\n");
      for (const f of ["a", "b"]) rmSync(join(volume(), f));
      writeFileSync(join(volume(), "data.txt"), "restored\n");
    });
  });

  describe("to a guest (fake toolbox)", () => {
    let node: FakePveNode;
    let launcher: Launcher;
    let vzPoint: string;

    before(async () => {
      node = await startFakePveNode();
      launcher = { launch: (f, a, o) => createExecaLauncher().launch(f, a, { ...o, env: { ...node.env, ...(o.env ?? {}) } }) };
      node.pve.addContainer(101, { hostname: "shop", status: "stopped", rootfs: { storage: "local-lvm", files: { "srv/orders.txt": "42\n" } } });
      await node.runner.run("vzdump", ["101", "--storage", "local", "--compress", "zstd", "--mode", "stop"]);
      const archive = join(node.dumpDir, readdirSync(node.dumpDir).find((f) => f.endsWith(".tar.zst"))!);
      vzPoint = "b-vzdump0000000000000000000001";
      jobs.ledger.commit(() =>
        jobs.backups.insert({
          id: vzPoint, jobId: "j-vz", guestId: "101", groupRunId: "", engine: "vzdump", mode: SnapshotMode.SNAPSHOT_MODE_STOP, consistency: Consistency.CONSISTENCY_APP,
          snapshotAt: undefined, createdAt: new Date(), locationKind: "vzdump-archive", location: archive, sizeBytes: 1, stacks: [], protected: false, notes: "",
          origin: "lull", sha256: "", manifest: undefined, integrity: undefined,
        }),
      );
    });
    after(async () => {
      await node?.close();
    });

    const guests = () => guestRestorePort({ runner: node.runner, launcher, log: silentLogger(), pbsStorage: undefined });

    it("restores to the next free vmid, and refuses an existing guest without force", async () => {
      const r = restorer({ guests: guests() });
      const run = await r.start({ guestId: "101", pointId: vzPoint, target: { kind: "guest", vmid: 0, storage: "", start: false }, force: false, requestedBy: "test" });
      const done = await r.settled(run.id);
      assert.equal(done.phase, "done", done.reason);
      assert.equal(done.target.kind === "guest" && done.target.vmid, 100);
      assert.equal(node.pve.guest(100)?.keys.hostname, "shop");

      const again = await r.start({ guestId: "101", pointId: vzPoint, target: { kind: "guest", vmid: 100, storage: "", start: false }, force: false, requestedBy: "test" });
      const refused = await r.settled(again.id);
      assert.equal(refused.phase, "failed");
      assert.equal(refused.errorCode, "LULL_E_GUEST_EXISTS");
      assert.ok(node.pve.guest(100), "the existing guest stays");
    });

    it("the next start destroys a guest a crashed restore left under lock: create, and no other", async () => {
      node.pve.addContainer(170, { hostname: "half", status: "stopped", lock: "create" });
      node.pve.addContainer(171, { hostname: "someone-else", status: "stopped" });
      const rs = new RestoreStore(store.database);
      for (const vmid of [170, 171]) {
        rs.insert({ ...newRestoreRecord({ id: `r-20261203T000001-${String(vmid).padStart(6, "0")}`, pointId: vzPoint, guestId: "101", target: { kind: "guest", vmid, storage: "", start: false }, force: false, requestedBy: "test" }, Date.now()) });
      }
      const recovered = await restorer({ guests: guests() }).recover();
      assert.deepEqual(recovered.map((r) => r.phase), ["failed", "failed"]);
      assert.match(recovered[0]!.reason, /half-created guest 170 \(lock: create\) was destroyed/);
      assert.match(recovered[1]!.reason, /guest 171 exists and is not a half-created restore/);
      assert.equal(node.pve.guest(170), undefined);
      assert.ok(node.pve.guest(171));
    });
  });
});
