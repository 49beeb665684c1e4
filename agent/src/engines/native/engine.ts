// The native backup engine: the agent's own storage driver takes the point-in-time copy,
// the copy is archived as tar.zst with progress, and the copy is released in `finally`.
//
//   driver.preflight (before any stack stops) → quiesce → snapshotting(mode) → driver.snapshot → snapshotted({mode, snapshotAt})
//           → archiving({mode, bytesTotal}) → progress… → release → {archivePath, archiveBytes}
//
// `snapshotted` is emitted only when a point-in-time copy exists (btrfs/lvmthin/zfs SNAPSHOT,
// dir COPY). With dir `snapshot: none` there is no copy: snapshotting/snapshotted are
// skipped and the live paths are archived while the stacks are still stopped; the
// controllers resume when the job ends.
import { SnapshotMode } from "@lull/proto";
import { LullError, modeName, systemClock, type Clock, type Logger } from "@lull/shared";
import { isNativeGuest, type AgentConfig, type GuestConfig, type NativeGuestConfig } from "../../config.js";
import type { CommandRunner } from "@lull/shared";
import { measureTrees } from "../../archive/measure.js";
import { createProgressReporter } from "../../archive/progress.js";
import { sweepPartialArchives, writeArchive } from "../../archive/tar-zst.js";
import { createStorageDriver, hasStorageDriver, type SnapshotHandle, type StorageDriver, type StorageKind } from "../../storage/index.js";
import { classifyFailure, throwIfCancelled } from "../../storage/failure.js";
import type { BackupEngine, EngineResult, EngineRun } from "../engine.js";

export interface NativeEngineDeps {
  config: AgentConfig;
  runner: CommandRunner;
  log: Logger;
  clock?: Clock;
  /** Minimum interval between two progress hook calls (default 1 s). */
  progressIntervalMs?: number;
}

export function createNativeEngine(deps: NativeEngineDeps): BackupEngine {
  const clock = deps.clock ?? systemClock;
  const log = deps.log.child({ engine: "native" });
  const drivers = new Map<StorageKind, StorageDriver>();

  function driverFor(kind: StorageKind): StorageDriver {
    let driver = drivers.get(kind);
    if (!driver) {
      driver = createStorageDriver(kind, { config: deps.config, runner: deps.runner, log, clock });
      drivers.set(kind, driver);
    }
    return driver;
  }

  async function release(driver: StorageDriver, handle: SnapshotHandle, run: EngineRun): Promise<void> {
    try {
      // No signal: a cancelled job still gets its snapshot removed.
      await driver.release(handle);
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      run.log.error({ jobId: run.jobId, err }, "snapshot release failed; swept at next start");
      run.hooks.note(`cleanup failed (swept again at the next agent start): ${message}`);
    }
  }

  function nativeGuest(guest: GuestConfig): NativeGuestConfig {
    if (!isNativeGuest(guest)) throw new LullError("LULL_E_CONFIG_INVALID", `guest ${guest.id} uses the ${guest.engine} engine, not native`);
    return guest;
  }

  async function archive(run: EngineRun, handle: SnapshotHandle): Promise<EngineResult> {
    const { hooks, signal, guest, jobId } = run;
    const native = nativeGuest(guest);
    const bytesTotal = await measureTrees(
      handle.volumes.map((v) => v.readPath),
      signal,
    ).catch((err: unknown) => {
      throw classifyFailure(err, "LULL_E_ARCHIVE_FAILED", `measuring guest ${guest.id}`, signal);
    });
    throwIfCancelled(signal, `archiving guest ${guest.id}`);
    hooks.archiving({ mode: handle.mode, bytesTotal });
    const progress = createProgressReporter((done, total) => hooks.progress(done, total), bytesTotal, {
      clock,
      ...(deps.progressIntervalMs !== undefined ? { intervalMs: deps.progressIntervalMs } : {}),
    });
    const result = await writeArchive({
      archiveDir: deps.config.archiveDir,
      prefix: deps.config.prefix,
      guestId: guest.id,
      jobId,
      zstdLevel: native.zstdLevel ?? deps.config.zstdLevel,
      zstdThreads: native.zstdThreads ?? deps.config.zstdThreads,
      volumes: handle.volumes,
      takenAt: handle.createdAt,
      live: handle.mode === SnapshotMode.SNAPSHOT_MODE_NONE,
      signal,
      onBytes: (bytes) => progress.update(bytes),
      log: run.log,
    });
    progress.finish();
    return result;
  }

  /**
   * The driver's snapshot, bounded by `timeoutMs`: past it the driver's signal aborts (its commands
   * are killed) and the job fails with LULL_E_SNAPSHOT_TIMEOUT at once, even when a command does not
   * die (a hung `dmsetup suspend`); a copy the driver still makes afterwards is released.
   */
  async function snapshotWithin(driver: StorageDriver, run: EngineRun, guest: NativeGuestConfig, timeoutMs: number): Promise<SnapshotHandle> {
    const { signal, jobId } = run;
    const timer = new AbortController();
    const timeout = () =>
      new LullError(
        "LULL_E_SNAPSHOT_TIMEOUT",
        `snapshotting guest ${guest.id} (${guest.driver}) did not finish within ${timeoutMs} ms (snapshotTimeoutMs); the stacks resume`,
      );
    let expire: (err: LullError) => void = () => undefined;
    const expired = new Promise<never>((_, reject) => {
      expire = reject;
    });
    const clock = setTimeout(() => {
      timer.abort(timeout());
      expire(timeout());
    }, timeoutMs);
    const taking = driver.snapshot({ jobId, guest, signal: AbortSignal.any([signal, timer.signal]) });
    try {
      return await Promise.race([taking, expired]);
    } catch (err) {
      if (timer.signal.aborted && !signal.aborted) {
        run.log.warn({ jobId, guestId: guest.id, timeoutMs }, "snapshot step timed out");
        // The driver may still finish: release what it made, so nothing is left until the next sweep.
        taking.then((late) => release(driver, late, run), () => undefined);
        throw timeout();
      }
      throw classifyFailure(err, "LULL_E_SNAPSHOT_FAILED", `snapshotting guest ${guest.id}`, signal);
    } finally {
      clearTimeout(clock);
    }
  }

  async function run(run: EngineRun): Promise<EngineResult> {
    const { hooks, signal, jobId } = run;
    const guest = nativeGuest(run.guest);
    const driver = driverFor(guest.driver);
    const mode = driver.modeFor(guest);
    await driver.preflight?.({ jobId, guest, signal });
    const consistency = await hooks.quiesce();
    throwIfCancelled(signal, `backing up guest ${guest.id}`);
    if (mode !== SnapshotMode.SNAPSHOT_MODE_NONE) hooks.snapshotting(mode);
    const handle = await snapshotWithin(driver, run, guest, guest.snapshotTimeoutMs ?? deps.config.snapshotTimeoutMs);
    try {
      for (const message of handle.notes ?? []) hooks.note(message);
      if (handle.mode !== SnapshotMode.SNAPSHOT_MODE_NONE) {
        // In a consistency group this waits for every member's copy (and throws if the group failed).
        await hooks.snapshotted({ mode: handle.mode, snapshotAt: handle.createdAt });
      }
      run.log.info(
        { jobId, guestId: guest.id, mode: modeName(handle.mode), consistency, artifacts: handle.artifacts },
        "point-in-time copy ready",
      );
      return await archive(run, handle);
    } catch (err) {
      throw classifyFailure(err, "LULL_E_ARCHIVE_FAILED", `archiving guest ${guest.id}`, signal);
    } finally {
      await release(driver, handle, run);
    }
  }

  return {
    name: "native",
    run,

    async sweep(configured: readonly GuestConfig[], signal?: AbortSignal): Promise<string[]> {
      const guests = configured.filter(isNativeGuest);
      const kinds = new Set<StorageKind>(["dir", ...guests.map((g) => g.driver)]);
      const removed: string[] = [];
      const failures: string[] = [];
      for (const kind of kinds) {
        if (!hasStorageDriver(kind)) {
          log.warn({ kind }, "no storage driver to sweep for");
          continue;
        }
        try {
          removed.push(...(await driverFor(kind).sweep(guests, signal !== undefined ? { signal } : {})));
        } catch (err) {
          failures.push(`${kind}: ${err instanceof Error ? err.message : String(err)}`);
        }
      }
      try {
        removed.push(...(await sweepPartialArchives(deps.config.archiveDir, deps.config.prefix)));
      } catch (err) {
        failures.push(`partial archives: ${err instanceof Error ? err.message : String(err)}`);
      }
      log.info({ removed, failures }, "native engine swept");
      if (failures.length > 0) {
        throw new LullError("LULL_E_CLEANUP_FAILED", `sweep incomplete (${failures.join("; ")}); removed: ${removed.join(", ") || "nothing"}`);
      }
      return removed;
    },
  };
}
