// Restore runs (README "Restore and verify"): a point back into a directory of this node, or a
// vzdump/PBS point back to a guest. Each run is a record of its own kind on the shared ledger
// (machine.ts: phases, store.ts: the `restores` table); every change is one transaction with its
// NOTE/PROGRESS events (job id = the run's id, `r-…`), published after it commits.
//
// Into a directory (native points), nothing in the target changes until the point is proven:
//   checking    the archive is hashed, listed and judged member by member (archive/safe-extract.ts):
//               hash and manifest equal the catalog's, no member escapes the target
//   extracting  GNU tar writes into `<target>/.lull-restore-<id>/` (the same file system, so the
//               moves below are renames), the archive hashed again on the way
//   placing     the target's contents are replaced by the staged copy (replaceContents: the old
//               entries aside, the copy moved in, the old removed — resumable at every step)
// A failure or cancel before placing removes the staging directory and leaves the target as it
// was. From placing on the run is committed: a cancel is refused, and a crash is finished at the
// next start.
//
// To a guest (vzdump archives, PBS snapshots): `pct restore` / `qmrestore --unique 1`
// (pve/guest-restore.ts); a crash leaves a guest under `lock: create`, which the next start
// destroys when this run created it (never a guest that existed before, `force`).
import { randomBytes } from "node:crypto";
import { lstat, mkdir, readdir, realpath, rename, rm, rmdir, statfs } from "node:fs/promises";
import { dirname, isAbsolute, join, relative, resolve } from "node:path";
import { EventKind, Phase, SnapshotMode, StackState } from "@lull/proto";
import { LullError, asLullError, isTerminal, type Clock, type Logger } from "@lull/shared";
import { checkArchive, safeExtract } from "../archive/safe-extract.js";
import type { BackupEngine } from "../engines/engine.js";
import type { JobRecord } from "../jobs/job.js";
import type { BackupStore } from "../backups/store.js";
import type { RestorePoint } from "../backups/restore-point.js";
import { noteDraft, type EventDraft } from "../ledger/event-log.js";
import type { Ledger } from "../ledger/ledger.js";
import { COMMITTED, ENDED, newRestoreRecord, transition, type RestoreEvent, type RestoreRecord, type RestoreTarget } from "./machine.js";
import type { RestoreStore } from "./store.js";

/** Restores a vzdump/PBS point to a guest (pve/guest-restore.ts over the real tools). */
export interface GuestRestorePort {
  restore(
    point: RestorePoint,
    request: { vmid: number | undefined; force: boolean; start: boolean; storage: string | undefined; signal: AbortSignal; onVmid: (vmid: number) => Promise<void> | void; onPercent: (percent: number) => void },
  ): Promise<{ vmid: number }>;
  /** After a crash: destroys guest `vmid` when it is still a half-created restore (`lock: create`); says what it did. */
  cleanUp(point: RestorePoint, vmid: number): Promise<string>;
}

export interface RestorerDeps {
  store: RestoreStore;
  backups: BackupStore;
  ledger: Ledger;
  /** Paths a restore may never write into or replace (the agent's own roots, the guests' volumes), by the key that names them. */
  guarded: ReadonlyArray<{ key: string; path: string }>;
  guests?: GuestRestorePort | undefined;
  /** Native guests' volumes (restores in place). */
  nativeGuests?: ReadonlyMap<string, { volumes: ReadonlyArray<{ name: string; path: string }> }> | undefined;
  /** The jobs that hold a guest's stacks stopped for a restore in place. */
  holds?: HoldJobs | undefined;
  log: Logger;
  clock: Clock;
  /** For crash tests: called after each committed phase change. */
  afterPhase?: (record: RestoreRecord) => Promise<void> | void;
}

/**
 * The job (kind restore) of a restore in place: it takes the guest's job slot (no backup starts
 * meanwhile), stops the stacks through their controllers (the quiesce barrier, policy fail) and
 * holds them until it ends — the controllers resume them at its end, as after a stop-mode backup.
 */
export interface HoldJobs {
  /** Creates the job and starts `engine` on it; throws LULL_E_GUEST_BUSY when the guest has a job that has not ended. */
  start(guestId: string, restoreId: string, requestedBy: string, engine: BackupEngine): JobRecord;
  get(jobId: string): JobRecord | undefined;
  cancel(jobId: string, reason: string): Promise<void>;
  /** After a crash in placing, once the volumes are placed: the job ends done. */
  finish(jobId: string, archivePath: string, archiveBytes: number): void;
  /** The stacks of the guest registered by a live controller now. */
  liveStacks(guestId: string): string[];
}

export interface RestoreRequest {
  guestId: string;
  pointId: string;
  target: { kind: "dir"; path: string } | { kind: "guest"; vmid: number; storage: string; start: boolean } | { kind: "in-place" };
  force: boolean;
  requestedBy: string;
}

export const STAGING_PREFIX = ".lull-restore-";
const PROGRESS_EVERY_MS = 500;

function nested(outer: string, inner: string): boolean {
  const rel = relative(outer, inner);
  return rel === "" || (!rel.startsWith("..") && !isAbsolute(rel));
}

/** Bytes free for the agent on the file system of `path` (Infinity when it cannot be told). */
async function freeBytes(path: string): Promise<number> {
  const fs = await statfs(path).catch(() => undefined);
  return fs ? fs.bavail * fs.bsize : Infinity;
}

async function realOrResolved(path: string): Promise<string> {
  return realpath(path).catch(() => resolve(path));
}

export class Restorer {
  private readonly running = new Map<string, { controller: AbortController; done: Promise<void> }>();
  /** Targets (directories, vmids) with a run that has not ended. */
  private readonly busyTargets = new Set<string>();
  private closed = false;

  constructor(private readonly deps: RestorerDeps) {}

  get(id: string): RestoreRecord {
    const r = this.deps.store.get(id);
    if (!r) throw new LullError("LULL_E_RESTORE_NOT_FOUND", `no restore ${id} on this agent: lullctl restores lists them`);
    return r;
  }

  list(guestId: string, limit: number): RestoreRecord[] {
    return this.deps.store.list(guestId, limit);
  }

  /** Checks the request, records the run and starts it; resolves with the run as recorded. */
  async start(request: RestoreRequest): Promise<RestoreRecord> {
    if (this.closed) throw new LullError("LULL_E_SHUTTING_DOWN", "the agent is stopping");
    const point = this.deps.backups.get(request.pointId);
    if (!point || point.guestId !== request.guestId) {
      throw new LullError("LULL_E_INVALID_ARGUMENT", `guest ${request.guestId} has no restore point ${request.pointId}: lullctl backups ${request.guestId} lists them`);
    }
    let target: RestoreTarget;
    if (request.target.kind === "dir") {
      if (point.locationKind !== "native-archive") {
        throw new LullError("LULL_E_INVALID_ARGUMENT", `point ${point.id} is a ${point.locationKind === "pbs-snapshot" ? "PBS snapshot" : "vzdump archive"}: restore it to a guest (lullctl restore ${point.id} --guest [vmid]), not into a directory`);
      }
      const checked = await this.checkDirTarget(request.target.path, request.force, point);
      target = { kind: "dir", path: checked.path, created: checked.created };
    } else if (request.target.kind === "in-place") {
      await this.checkInPlace(point, request.force);
      target = { kind: "in-place", jobId: "" };
    } else {
      if (point.locationKind === "native-archive") {
        throw new LullError("LULL_E_INVALID_ARGUMENT", `point ${point.id} is a native archive: restore it into a directory (lullctl restore ${point.id} --to <dir>), not to a guest`);
      }
      if (!this.deps.guests) {
        throw new LullError("LULL_E_INVALID_ARGUMENT", `restoring a guest needs the Proxmox side of the agent (a guest with engine vzdump in its configuration); this agent has none`);
      }
      const vmid = request.target.vmid;
      if (vmid !== 0 && (!Number.isInteger(vmid) || vmid < 100 || vmid > 999_999_999)) {
        throw new LullError("LULL_E_INVALID_ARGUMENT", `vmid ${vmid} is not a Proxmox vmid (100 to 999999999; leave it out for the next free one)`);
      }
      target = { ...request.target };
    }
    const key = target.kind === "dir" ? `dir:${target.path}` : target.kind === "in-place" ? `in-place:${point.guestId}` : target.vmid ? `guest:${target.vmid}` : "";
    if (key && this.busyTargets.has(key)) {
      throw new LullError("LULL_E_GUEST_BUSY", `a restore to ${describe(target, point.guestId)} is already running: wait for it (lullctl restores) or cancel it`);
    }
    const now = this.deps.clock.now();
    const id = `r-${new Date(now).toISOString().replace(/[-:.]/g, "").slice(0, 15)}-${randomBytes(3).toString("hex")}`;
    let record = newRestoreRecord({ id, pointId: point.id, guestId: point.guestId, target, force: request.force, requestedBy: request.requestedBy }, now);
    const controller = new AbortController();
    let hold: InPlaceHold | undefined;
    if (target.kind === "in-place") {
      // The job first: a guest that is busy (a backup running) refuses before anything is recorded.
      hold = new InPlaceHold(point);
      const job = this.deps.holds!.start(point.guestId, id, request.requestedBy, hold.engine());
      record = { ...record, target: { kind: "in-place", jobId: job.id } };
    }
    this.deps.ledger.commit(() => {
      this.deps.store.insert(record);
      this.deps.ledger.append([this.note(record, `restore ${id} of ${point.id} to ${describe(record.target, point.guestId)} ${record.phase}`)], now);
    });
    if (key) this.busyTargets.add(key);
    const done = (hold ? this.runInPlace(record, point, hold, controller.signal) : this.run(record, point, controller.signal))
      .catch((err: unknown) => this.deps.log.error({ err, restoreId: id }, "restore run failed unexpectedly"))
      .finally(() => {
        this.running.delete(id);
        if (key) this.busyTargets.delete(key);
      });
    this.running.set(id, { controller, done });
    return record;
  }

  /** Resolves when the run has ended (for tests and `close`). */
  async settled(id: string): Promise<RestoreRecord> {
    await this.running.get(id)?.done;
    return this.get(id);
  }

  /** Cancels a run before it commits; a run past that point (placing) is finished. */
  cancel(id: string, reason: string): RestoreRecord {
    const r = this.get(id);
    if (ENDED.includes(r.phase)) throw new LullError("LULL_E_JOB_TERMINAL", `restore ${id} has already ended ${r.phase}`);
    if (COMMITTED.includes(r.phase)) {
      throw new LullError("LULL_E_WRONG_PHASE", `restore ${id} is ${r.phase}: the point is checked and extracted and the target is being replaced; it cannot be cancelled now and ends in moments`);
    }
    this.running.get(id)?.controller.abort(new LullError("LULL_E_CANCELLED", reason || "restore cancelled"));
    if (r.target.kind === "in-place" && r.target.jobId) void this.deps.holds?.cancel(r.target.jobId, reason || "restore cancelled").catch(() => undefined);
    return r;
  }

  /** Cancels the runs that can be cancelled and waits for every run to end. */
  async close(): Promise<void> {
    this.closed = true;
    for (const [id, run] of this.running) {
      const r = this.deps.store.get(id);
      if (!r || COMMITTED.includes(r.phase)) continue;
      run.controller.abort(new LullError("LULL_E_CANCELLED", "the agent is stopping"));
      // A restore in place waits for its job: end it too (its stacks resume, the volumes stay as they were).
      if (r.target.kind === "in-place" && r.target.jobId) void this.deps.holds?.cancel(r.target.jobId, "the agent is stopping").catch(() => undefined);
    }
    await Promise.all([...this.running.values()].map((r) => r.done));
  }

  /** At start: ends or finishes the runs a previous agent left open. */
  async recover(): Promise<RestoreRecord[]> {
    const out: RestoreRecord[] = [];
    for (const open of this.deps.store.open()) {
      let r = open;
      try {
        if (r.target.kind === "in-place") {
          r = await this.recoverInPlace(r);
        } else if (r.target.kind === "dir" && COMMITTED.includes(r.phase)) {
          r = await this.place(r, true);
          this.deps.log.warn({ restoreId: r.id, target: r.target }, "restore the agent stopped while replacing its target was finished");
        } else if (r.target.kind === "dir") {
          await this.removeStaging(r.target.path, r.id);
          r = this.apply(r, { type: "interrupted", detail: `what it had extracted was removed at the next start; ${r.target.path} is as it was` });
        } else {
          const point = this.deps.backups.get(r.pointId);
          const vmid = r.target.vmid;
          const detail =
            vmid && point && this.deps.guests && !r.force
              ? await this.deps.guests.cleanUp(point, vmid).catch((err: unknown) => `guest ${vmid} could not be checked (${(err as Error).message}); look at it with pct config / qm config`)
              : vmid
                ? `guest ${vmid} was left as it is${r.force ? " (it existed before: force)" : ""}; look at it with pct config / qm config`
                : "no guest had been created yet";
          r = this.apply(r, { type: "interrupted", detail });
        }
      } catch (err) {
        this.deps.log.error({ err, restoreId: r.id }, "restore left by the previous agent could not be settled; the next start tries again");
      }
      out.push(r);
    }
    return out;
  }

  /** Removes the run's staging directory, and the target too when the run created it and it is empty. */
  private async removeStaging(target: string, id: string): Promise<void> {
    await rm(join(target, `${STAGING_PREFIX}${id}`), { recursive: true, force: true }).catch(() => undefined);
    const r = this.deps.store.get(id);
    if (r?.target.kind === "dir" && r.target.created) await rmdir(target).catch(() => undefined);
  }

  private volumesOf(guestId: string): ReadonlyArray<{ name: string; path: string }> {
    const guest = this.deps.nativeGuests?.get(guestId);
    if (!guest) throw new LullError("LULL_E_INVALID_ARGUMENT", `guest ${guestId} is no native guest of this agent: a restore in place replaces a native guest's volumes (vzdump points go to a guest: --guest)`);
    return guest.volumes;
  }

  private async checkInPlace(point: RestorePoint, force: boolean): Promise<void> {
    if (point.locationKind !== "native-archive") {
      throw new LullError("LULL_E_INVALID_ARGUMENT", `point ${point.id} is a ${point.locationKind === "pbs-snapshot" ? "PBS snapshot" : "vzdump archive"}: Proxmox restores it to a guest (--guest <vmid> --force overwrites a stopped one); in place is for native guests`);
    }
    const volumes = this.volumesOf(point.guestId);
    if (!this.deps.holds) throw new LullError("LULL_E_INVALID_ARGUMENT", "this agent was started without the jobs a restore in place needs");
    const stacks = this.deps.holds.liveStacks(point.guestId);
    if (stacks.length === 0 && !force) {
      throw new LullError(
        "LULL_E_INVALID_ARGUMENT",
        `no controller holds a stack of guest ${point.guestId} now, so nothing would be stopped while its volumes are replaced: start its controllers, or stop what uses ${volumes.map((v) => v.path).join(", ")} yourself and pass --force`,
      );
    }
    for (const v of volumes) {
      const st = await lstat(v.path).catch(() => undefined);
      if (!st?.isDirectory()) throw new LullError("LULL_E_INVALID_ARGUMENT", `volume ${v.name} of guest ${point.guestId} (${v.path}) is not a directory`);
      if (point.manifest) {
        const free = await freeBytes(v.path);
        if (free < point.manifest.totalBytes) {
          throw new LullError("LULL_E_NO_SPACE", `volume ${v.name} (${v.path}) has ${free} bytes free; the restore extracts beside its contents first and point ${point.id} holds up to ${point.manifest.totalBytes} bytes of files`);
        }
      }
    }
  }

  private async removeVolumeStaging(guestId: string, id: string): Promise<void> {
    for (const v of this.deps.nativeGuests?.get(guestId)?.volumes ?? []) await rm(join(v.path, `${STAGING_PREFIX}${id}`), { recursive: true, force: true }).catch(() => undefined);
  }

  /** The volumes are replaced while the stacks are held: each volume's other entries go, the staged ones move in. */
  /** The volumes are replaced while the stacks are held, each through replaceContents (a restart resumes it). */
  private async placeVolumes(guestId: string, id: string, recovering: boolean): Promise<void> {
    for (const v of this.volumesOf(guestId)) await replaceContents(v.path, `${STAGING_PREFIX}${id}`, !recovering);
  }

  private async runInPlace(initial: RestoreRecord, point: RestorePoint, hold: InPlaceHold, signal: AbortSignal): Promise<void> {
    let r = initial;
    if (r.target.kind !== "in-place") throw new Error("not a restore in place");
    const jobId = r.target.jobId;
    const holds = this.deps.holds!;
    const t0 = this.deps.clock.now();
    let lastProgress = 0;
    const progress = (bytes: number, total: number) => {
      const now = this.deps.clock.now();
      if (now - lastProgress < PROGRESS_EVERY_MS && bytes < total) return;
      lastProgress = now;
      r = this.apply(r, { type: "progress", bytesDone: bytes, bytesTotal: total });
    };
    hold.place = async () => {
      // The stacks must still be held: a controller that resumed at its deadline runs its app again.
      const job = holds.get(jobId);
      const resumed = job?.stacks.filter((s) => s.state !== StackState.STACK_STATE_QUIESCED) ?? [];
      if (resumed.length > 0) {
        throw new LullError(
          "LULL_E_RESTORE_FAILED",
          `stack ${resumed.map((s) => s.stack).join(", ")} is not held stopped any more (${resumed.map((s) => (s.state === StackState.STACK_STATE_RESUMED ? "resumed" : `state ${s.state}`)).join(", ")}): its volumes were left as they were; raise the controller's resumeDeadlineMs above the restore's time`,
        );
      }
      r = this.apply(r, { type: "held" });
      await this.deps.afterPhase?.(r);
      await this.placeVolumes(r.guestId, r.id, false);
    };
    try {
      const volumes = this.volumesOf(point.guestId);
      const checked = await checkArchive(point.location, { expect: { sha256: point.sha256 || undefined, manifest: point.manifest }, signal, onBytes: (_p, b, t) => progress(b, t) });
      const missing = volumes.filter((v) => !checked.volumes.includes(v.name));
      if (missing.length > 0) {
        throw new LullError("LULL_E_RESTORE_FAILED", `point ${point.id} holds the volumes ${checked.volumes.join(", ")}; guest ${point.guestId}'s ${missing.map((v) => v.name).join(", ")} is not among them: restore it into a directory instead`);
      }
      const t1 = this.deps.clock.now();
      r = this.apply(r, { type: "checked", sha256: checked.sha256, files: checked.manifest.fileCount, bytes: checked.manifest.totalBytes, ms: t1 - t0 });
      await this.deps.afterPhase?.(r);
      for (const v of volumes) {
        const staging = join(v.path, `${STAGING_PREFIX}${r.id}`);
        await mkdir(staging, { mode: 0o700 });
        await safeExtract(point.location, staging, { expect: {}, checked, only: v.name, signal, onBytes: (_p, b, t) => progress(b, t) });
      }
      signal.throwIfAborted();
      r = this.apply(r, { type: "extracted", ms: this.deps.clock.now() - t1 });
      await this.deps.afterPhase?.(r);
      hold.extracted.resolve();
    } catch (err) {
      hold.extracted.reject(err);
    }
    // The job ends in every case: done once placed, else failed or cancelled (the stacks resume).
    let job = holds.get(jobId);
    while (job && !isTerminal(job.phase)) {
      await this.deps.clock.sleep(100).catch(() => undefined);
      job = holds.get(jobId);
    }
    r = this.get(r.id);
    if (ENDED.includes(r.phase)) return;
    if (job?.phase === Phase.PHASE_DONE && r.phase === "placing") {
      r = this.apply(r, { type: "placed" });
    } else if (r.phase === "placing") {
      this.deps.log.error({ restoreId: r.id, jobId, error: job?.errorMessage }, "restore in place failed while replacing the volumes; the next start finishes it");
      return;
    } else {
      await this.removeVolumeStaging(r.guestId, r.id);
      const cancelled = job?.phase === Phase.PHASE_CANCELLED || signal.aborted;
      const reason = job?.errorMessage || (signal.reason as Error | undefined)?.message || "the restore's job ended";
      r = this.apply(r, cancelled ? { type: "cancelled", reason } : { type: "failed", code: job?.errorCode || "LULL_E_RESTORE_FAILED", reason: `${reason}; the volumes were left as they were` });
    }
    this.deps.log.info({ restoreId: r.id, pointId: r.pointId, phase: r.phase, jobId, reason: r.reason }, "restore ended");
  }

  /** At start (before the jobs' own recovery): a run that was placing is finished and its job ends done; earlier ones leave the volumes as they were. */
  private async recoverInPlace(open: RestoreRecord): Promise<RestoreRecord> {
    let r = open;
    if (r.target.kind !== "in-place") return r;
    const point = this.deps.backups.get(r.pointId);
    if (r.phase === "placing" && point) {
      await this.placeVolumes(r.guestId, r.id, true);
      const job = this.deps.holds?.get(r.target.jobId);
      if (job && !isTerminal(job.phase)) this.deps.holds?.finish(job.id, point.location, point.sizeBytes);
      r = this.apply(r, { type: "placed" });
      this.deps.log.warn({ restoreId: r.id }, "restore in place the agent stopped while replacing the volumes was finished");
      return r;
    }
    await this.removeVolumeStaging(r.guestId, r.id);
    return this.apply(r, { type: "interrupted", detail: "what it had extracted beside the volumes was removed at the next start; the volumes are as they were and the stacks resume" });
  }

  private async checkDirTarget(path: string, force: boolean, point: RestorePoint): Promise<{ path: string; created: boolean }> {
    if (!isAbsolute(path)) throw new LullError("LULL_E_INVALID_ARGUMENT", `restore target ${path} must be an absolute path`);
    const st = await lstat(path).catch(() => undefined);
    if (st && !st.isDirectory() && !st.isSymbolicLink()) throw new LullError("LULL_E_INVALID_ARGUMENT", `restore target ${path} exists and is not a directory`);
    const real = st ? await realOrResolved(path) : join(await realOrResolved(dirname(path)), path.split("/").at(-1)!);
    if (st && !(await lstat(real)).isDirectory()) throw new LullError("LULL_E_INVALID_ARGUMENT", `restore target ${path} leads to ${real}, which is not a directory`);
    if (real === "/") throw new LullError("LULL_E_INVALID_ARGUMENT", "restore target / is refused: restore into a directory of its own");
    for (const g of this.deps.guarded) {
      const guarded = await realOrResolved(g.path);
      if (nested(real, guarded) || nested(guarded, real)) {
        throw new LullError("LULL_E_INVALID_ARGUMENT", `restore target ${real} overlaps ${g.key} (${guarded}): restore into a directory outside the agent's own directories and the guests' volumes`);
      }
    }
    if (!st) {
      const parent = await lstat(dirname(real)).catch(() => undefined);
      if (!parent?.isDirectory()) throw new LullError("LULL_E_INVALID_ARGUMENT", `restore target ${path}: its parent directory ${dirname(real)} does not exist`);
    } else {
      const entries = (await readdir(real)).filter((e) => !e.startsWith(STAGING_PREFIX));
      if (entries.length > 0 && !force) {
        throw new LullError(
          "LULL_E_TARGET_NOT_EMPTY",
          `restore target ${real} is not empty (${entries.slice(0, 3).join(", ")}${entries.length > 3 ? `, … ${entries.length} entries` : ""}): choose an empty directory, or pass --force to replace its contents`,
        );
      }
    }
    if (point.manifest) {
      const free = await freeBytes(st ? real : dirname(real));
      if (free < point.manifest.totalBytes) {
        throw new LullError("LULL_E_NO_SPACE", `restore target ${real} has ${free} bytes free; point ${point.id} holds ${point.manifest.totalBytes} bytes of files`);
      }
    }
    return { path: real, created: !st };
  }

  private async run(initial: RestoreRecord, point: RestorePoint, signal: AbortSignal): Promise<void> {
    let r = initial;
    await this.deps.afterPhase?.(r);
    try {
      if (r.target.kind === "dir") r = await this.restoreDir(r, point, signal);
      else r = await this.restoreToGuest(r, point, signal);
    } catch (err) {
      const e = asLullError(err);
      if (ENDED.includes(this.get(r.id).phase)) return;
      r = this.get(r.id);
      if (COMMITTED.includes(r.phase)) {
        this.deps.log.error({ err, restoreId: r.id }, "restore failed while replacing its target; the next start finishes it");
        return;
      }
      const cancelled = signal.aborted && e.code === "LULL_E_CANCELLED";
      if (r.target.kind === "dir") await this.removeStaging(r.target.path, r.id);
      r = this.apply(r, cancelled ? { type: "cancelled", reason: e.message } : { type: "failed", code: e.code, reason: e.message });
    }
    this.deps.log.info({ restoreId: r.id, pointId: r.pointId, phase: r.phase, target: r.target, reason: r.reason }, "restore ended");
  }

  private async restoreDir(initial: RestoreRecord, point: RestorePoint, signal: AbortSignal): Promise<RestoreRecord> {
    let r = initial;
    if (r.target.kind !== "dir") throw new Error("not a directory restore");
    const target = r.target.path;
    const staging = join(target, `${STAGING_PREFIX}${r.id}`);
    await mkdir(target, { recursive: true })
      .then(() => mkdir(staging, { mode: 0o700 }))
      .catch((err: NodeJS.ErrnoException) => {
        throw new LullError(
          "LULL_E_INVALID_ARGUMENT",
          `restore target ${target} cannot be written by the agent (${err.code ?? err.message})${err.code === "EROFS" || err.code === "EACCES" || err.code === "EPERM" ? ": the agent's systemd unit keeps /usr and /boot read-only and /home, /root hidden — restore under /srv, /var or /mnt" : ""}`,
        );
      });
    const t0 = this.deps.clock.now();
    let lastProgress = 0;
    let t1 = t0;
    const checked = await safeExtract(point.location, staging, {
      expect: { sha256: point.sha256 || undefined, manifest: point.manifest },
      signal,
      onBytes: (pass, bytes, total) => {
        if (pass === "extract" && r.phase === "checking") return;
        const now = this.deps.clock.now();
        if (now - lastProgress < PROGRESS_EVERY_MS && bytes < total) return;
        lastProgress = now;
        r = this.apply(r, { type: "progress", bytesDone: bytes, bytesTotal: total });
      },
      onChecked: (c) => {
        t1 = this.deps.clock.now();
        r = this.apply(r, { type: "checked", sha256: c.sha256, files: c.manifest.fileCount, bytes: c.manifest.totalBytes, ms: t1 - t0 });
        return this.deps.afterPhase?.(r);
      },
    });
    signal.throwIfAborted();
    r = this.apply(r, { type: "extracted", ms: this.deps.clock.now() - t1 });
    this.deps.log.info({ restoreId: r.id, files: checked.manifest.fileCount, bytes: checked.manifest.totalBytes }, "restore checked and extracted");
    await this.deps.afterPhase?.(r);
    return this.place(r, false);
  }

  /** placing, then done: the target's contents replaced by the staged copy; resumable, so a restart redoes it. */
  private async place(r: RestoreRecord, recovering: boolean): Promise<RestoreRecord> {
    if (r.target.kind !== "dir") throw new Error("not a directory restore");
    await replaceContents(r.target.path, `${STAGING_PREFIX}${r.id}`, !recovering);
    return this.apply(r, { type: "placed" });
  }

  private async restoreToGuest(initial: RestoreRecord, point: RestorePoint, signal: AbortSignal): Promise<RestoreRecord> {
    let r = initial;
    if (r.target.kind !== "guest" || !this.deps.guests) throw new Error("not a guest restore");
    const t = r.target;
    const result = await this.deps.guests.restore(point, {
      vmid: t.vmid || undefined,
      force: r.force,
      start: t.start,
      storage: t.storage || undefined,
      signal,
      onVmid: (vmid) => {
        r = this.apply(r, { type: "vmid", vmid });
      },
      onPercent: (percent) => {
        r = this.apply(r, { type: "progress", bytesDone: percent, bytesTotal: 100 });
      },
    });
    return this.apply(r, { type: "guest-restored", vmid: result.vmid });
  }

  private apply(record: RestoreRecord, event: RestoreEvent): RestoreRecord {
    const now = this.deps.clock.now();
    const next = transition(record, event, now);
    this.deps.ledger.commit(() => {
      this.deps.store.save(next);
      if (event.type === "progress") {
        this.deps.ledger.append([noteDraft({ jobId: next.id, guestId: next.guestId, message: "", kind: EventKind.EVENT_KIND_PROGRESS, bytesDone: next.bytesDone, bytesTotal: next.bytesTotal })], now);
      } else if (next.phase !== record.phase || event.type === "vmid") {
        const what =
          event.type === "vmid"
            ? `restore ${next.id}: guest ${event.vmid}`
            : `restore ${next.id} of ${next.pointId} ${next.phase}${next.reason && (next.phase === "failed" || next.phase === "cancelled") ? `: ${next.reason}` : ""}`;
        this.deps.ledger.append([this.note(next, what)], now);
      }
    });
    return next;
  }

  private note(record: RestoreRecord, message: string): EventDraft {
    return noteDraft({ jobId: record.id, guestId: record.guestId, message, errorCode: record.phase === "failed" ? record.errorCode : "" });
  }
}

export function describe(t: RestoreTarget, guestId = ""): string {
  if (t.kind === "dir") return t.path;
  if (t.kind === "in-place") return `guest ${guestId}'s own volumes`;
  return t.vmid ? `guest ${t.vmid}` : "the next free guest id";
}

/**
 * Moves every entry of `staging` into `dir`, then removes `staging`. Idempotent: an entry an earlier
 * attempt already moved (a restart) is replaced by the staged one, and a missing `staging` is
 * fine unless `mustExist`.
 */
async function moveUp(dir: string, staging: string, mustExist = false): Promise<void> {
  const entries = await readdir(staging).catch((err: NodeJS.ErrnoException) => {
    if (err.code === "ENOENT" && !mustExist) return [] as string[];
    throw err;
  });
  for (const e of entries) {
    await rm(join(dir, e), { recursive: true, force: true });
    await rename(join(staging, e), join(dir, e));
  }
  await rmdir(staging).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== "ENOENT") throw err;
  });
}

/**
 * Replaces `dir`'s contents with those of its staging directory `dir/<name>`, in steps a restart
 * can resume at any point without losing either side: (1) every other entry is renamed into
 * `<name>-old`, then the staging directory is renamed `<name>-ready` — the mark that step 1 is
 * complete; (2) the entries of `-ready` are renamed into `dir`; (3) `-old` is removed. Renames
 * only (the same file system), so `dir` may be a mount point or a btrfs subvolume.
 */
async function replaceContents(dir: string, name: string, mustExist: boolean): Promise<void> {
  const staging = join(dir, name);
  const ready = join(dir, `${name}-ready`);
  const old = join(dir, `${name}-old`);
  const exists = (p: string) => lstat(p).then(() => true, () => false);
  if (await exists(staging)) {
    await mkdir(old, { recursive: true });
    for (const e of await readdir(dir)) {
      if (e === name || e === `${name}-old` || e === `${name}-ready`) continue;
      await rename(join(dir, e), join(old, e));
    }
    await rename(staging, ready);
  } else if (mustExist && !(await exists(ready))) {
    throw new LullError("LULL_E_RESTORE_FAILED", `the extracted copy ${staging} is gone: the volume ${dir} was left as it was`);
  }
  if (await exists(ready)) await moveUp(dir, ready, true);
  await rm(old, { recursive: true, force: true });
}

function deferred<T = void>(): { promise: Promise<T>; resolve: (v: T) => void; reject: (e: unknown) => void } {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  promise.catch(() => undefined);
  return { promise, resolve, reject };
}

/**
 * The two halves of a restore in place: the restorer extracts beside each volume's contents, then
 * lets the job's engine go on; the engine stops and holds the stacks (the quiesce barrier, then
 * archiving in mode stop: the controllers hold until the job's end) and asks the restorer to place.
 */
class InPlaceHold {
  readonly extracted = deferred();
  /** Set by the restorer: replaces the volumes while the stacks are held. */
  place: (() => Promise<void>) | undefined;

  constructor(private readonly point: RestorePoint) {}

  engine(): BackupEngine {
    return {
      name: "native",
      run: async ({ hooks, signal }) => {
        await Promise.race([
          this.extracted.promise,
          new Promise<never>((_r, reject) => {
            if (signal.aborted) reject(signal.reason);
            signal.addEventListener("abort", () => reject(signal.reason), { once: true });
          }),
        ]);
        await hooks.quiesce();
        signal.throwIfAborted();
        hooks.snapshotting(SnapshotMode.SNAPSHOT_MODE_STOP);
        hooks.archiving({ mode: SnapshotMode.SNAPSHOT_MODE_STOP, bytesTotal: this.point.manifest?.totalBytes ?? 0 });
        signal.throwIfAborted();
        if (!this.place) throw new LullError("LULL_E_INTERNAL", "restore in place: nothing to place");
        await this.place();
        return { archivePath: this.point.location, archiveBytes: this.point.sizeBytes };
      },
      sweep: async () => [],
    };
  }
}
