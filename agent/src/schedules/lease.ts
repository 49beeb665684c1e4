// The cluster lease on pmxcfs, as pve-cluster's cfs_lock and pve-ha-manager's get_pve_lock use it:
// acquire with mkdir /etc/pve/priv/lock/lull-<name> (atomic cluster-wide); while it exists, ask
// for a stale lock to be freed with utime(0, 0) (pmxcfs's lowest node deletes a lock no node has
// seen change for 120 s) and try again each second until the acquire timeout; renew with
// utime(0, now) from the holder's node; release with rmdir.
//
// Bounds (the lock has no fencing token, so the holder fences itself):
// - the lease is valid for `validForMs` after its last successful renew (default 60 s, half the
//   lock's 120 s lifetime): `valid()` turns false then even if no renew ran (a paused process
//   resuming finds it so before its next side effect);
// - a failed or overdue renew aborts `signal` at once; the work must stop within `stopWithinMs`;
// - release never waits longer than `releaseTimeoutMs` (a hung rmdir is abandoned: pmxcfs frees
//   the lock after 120 s anyway), and a lost lease is never rmdir'd (it may be another node's now).
import { LullError } from "@lull/shared";
import { errno, type ClusterFs } from "./cluster-fs.js";

export interface Clock {
  now(): number;
  /** Resolves after `ms` of this clock's time (or at once when `signal` aborts). */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
  setInterval(fn: () => void, ms: number): { cancel(): void };
}

export const realClock: Clock = {
  now: () => Date.now(),
  sleep: (ms, signal) =>
    new Promise((resolve) => {
      if (signal?.aborted) return resolve();
      const t = setTimeout(done, ms);
      function done() {
        clearTimeout(t);
        signal?.removeEventListener("abort", done);
        resolve();
      }
      signal?.addEventListener("abort", done, { once: true });
    }),
  setInterval: (fn, ms) => {
    const t = setInterval(fn, ms);
    return { cancel: () => clearInterval(t) };
  },
};

/** A clock running `speed` times faster than real time (simulations, benchmarks). */
export function scaledClock(speed: number, base = Date.now(), realStart = Date.now()): Clock {
  const t0 = realStart;
  return {
    now: () => base + (Date.now() - t0) * speed,
    sleep: (ms, signal) => realClock.sleep(ms / speed, signal),
    setInterval: (fn, ms) => realClock.setInterval(fn, Math.max(1, ms / speed)),
  };
}

export interface LeaseTiming {
  /** pmxcfs's CFS_LOCK_TIMEOUT as the cluster counts it. */
  lockTimeoutMs: number;
  /** How often the holder renews (≤ 10 s). */
  renewEveryMs: number;
  /** How long a renew may take before it counts as failed. */
  renewTimeoutMs: number;
  /** The lease is valid this long after the last successful renew. */
  validForMs: number;
  /** Work stops within this long of a failed renew. */
  stopWithinMs: number;
  /** Work between two checks of the lease (each chunk of work under the lease is at most this). */
  chunkMs: number;
  /** cfs_lock's acquire timeout. */
  acquireTimeoutMs: number;
  /** Pause between acquire attempts. */
  retryEveryMs: number;
  releaseTimeoutMs: number;
}

export const DEFAULT_LEASE_TIMING: LeaseTiming = {
  lockTimeoutMs: 120_000,
  renewEveryMs: 10_000,
  renewTimeoutMs: 5_000,
  validForMs: 60_000,
  stopWithinMs: 60_000,
  chunkMs: 25_000,
  acquireTimeoutMs: 10_000,
  retryEveryMs: 1_000,
  releaseTimeoutMs: 5_000,
};

/** The timing rules, checked together; each broken rule names both settings. */
export function checkLeaseTiming(t: LeaseTiming, prefix = "lease"): void {
  const rules: [boolean, string][] = [
    [t.renewEveryMs <= 10_000 * (t.lockTimeoutMs / 120_000), `${prefix}.renewEveryMs (${t.renewEveryMs}) must be at most 10 s (scaled to ${prefix}.lockTimeoutMs)`],
    [t.renewEveryMs + t.renewTimeoutMs < t.validForMs, `${prefix}.renewEveryMs + ${prefix}.renewTimeoutMs (${t.renewEveryMs + t.renewTimeoutMs}) must be shorter than ${prefix}.validForMs (${t.validForMs})`],
    [t.validForMs < t.lockTimeoutMs, `${prefix}.validForMs (${t.validForMs}) must be shorter than ${prefix}.lockTimeoutMs (${t.lockTimeoutMs})`],
    [t.chunkMs < t.stopWithinMs, `${prefix}.chunkMs (${t.chunkMs}) must be shorter than ${prefix}.stopWithinMs (${t.stopWithinMs})`],
    [t.validForMs + t.chunkMs < t.lockTimeoutMs, `${prefix}.validForMs + ${prefix}.chunkMs (${t.validForMs + t.chunkMs}) must be shorter than ${prefix}.lockTimeoutMs (${t.lockTimeoutMs}): work could outlive the lock`],
    [t.releaseTimeoutMs <= 5_000 * (t.lockTimeoutMs / 120_000) + 1e-9, `${prefix}.releaseTimeoutMs (${t.releaseTimeoutMs}) must be at most 5 s (scaled to ${prefix}.lockTimeoutMs)`],
    [t.retryEveryMs < t.acquireTimeoutMs, `${prefix}.retryEveryMs (${t.retryEveryMs}) must be shorter than ${prefix}.acquireTimeoutMs (${t.acquireTimeoutMs})`],
  ];
  const broken = rules.filter(([ok]) => !ok).map(([, why]) => why);
  if (broken.length > 0) throw new LullError("LULL_E_CONFIG_INVALID", `lease timing: ${broken.join("; ")}`);
}

/** Scales every window of the default timing (tests and simulations shrink the 120 s). */
export function scaledTiming(lockTimeoutMs: number): LeaseTiming {
  const f = lockTimeoutMs / DEFAULT_LEASE_TIMING.lockTimeoutMs;
  const out = {} as LeaseTiming;
  for (const [k, v] of Object.entries(DEFAULT_LEASE_TIMING)) (out as unknown as Record<string, number>)[k] = v * f;
  return out;
}

/** pmxcfs's lock directory (pve-cluster's `$lockdir`), relative to the mount. */
export const LOCK_DIR = "priv/lock";
export const lockPath = (name: string) => `${LOCK_DIR}/lull-${name}`;

export type AcquireResult = { held: true; lease: Lease } | { held: false; reason: string; code: "no-quorum" | "timeout" | "error" };

export async function acquireLease(fs: ClusterFs, name: string, timing: LeaseTiming, clock: Clock): Promise<AcquireResult> {
  const id = `lull-${name}`;
  const path = lockPath(name);
  const deadline = clock.now() + timing.acquireTimeoutMs;
  for (;;) {
    let quorate: boolean;
    try {
      quorate = await fs.quorate();
    } catch (err) {
      return { held: false, code: "error", reason: `cfs-lock '${id}' error: cannot read the quorum flag: ${(err as Error).message}` };
    }
    if (!quorate) return { held: false, code: "no-quorum", reason: `cfs-lock '${id}' error: no quorum!` };
    // As cfs_lock does: make the lock directory first (a new cluster may not have one yet).
    const made = await fs.mkdir(LOCK_DIR).then(() => undefined, (err: unknown) => (errno(err) === "EEXIST" ? undefined : err));
    if (made !== undefined) {
      const code = errno(made);
      if (code === "EACCES" || code === "EROFS") return { held: false, code: "no-quorum", reason: `cfs-lock '${id}' error: no quorum!` };
      return { held: false, code: "error", reason: `cfs-lock '${id}' error: can't create '${LOCK_DIR}' (pmxcfs not mounted?): ${(made as Error).message}` };
    }
    try {
      await fs.mkdir(path);
      const lease = new Lease(fs, path, id, timing, clock);
      lease.start();
      return { held: true, lease };
    } catch (err) {
      const code = errno(err);
      if (code === "EACCES" || code === "EROFS") return { held: false, code: "no-quorum", reason: `cfs-lock '${id}' error: no quorum!` };
      if (code !== "EEXIST") return { held: false, code: "error", reason: `cfs-lock '${id}' error: ${(err as Error).message}` };
    }
    // Held: ask pmxcfs to free it if stale (utime(0, 0)), then try again.
    await fs.utime(path, 0).catch(() => undefined);
    if (clock.now() + timing.retryEveryMs > deadline) {
      return { held: false, code: "timeout", reason: `cfs-lock '${id}' error: got lock request timeout` };
    }
    await clock.sleep(timing.retryEveryMs);
  }
}

export class Lease {
  private readonly controller = new AbortController();
  private lastRenewOk: number;
  private timer: { cancel(): void } | undefined;
  private renewing = false;
  private released = false;
  /** When the lease was found lost (this clock), and why. */
  lostAt: number | undefined;
  lostReason = "";
  /** When the first renew that did not succeed was due or started: the lease was lost from then. */
  lostRenewAt: number | undefined;

  constructor(
    private readonly fs: ClusterFs,
    private readonly path: string,
    readonly id: string,
    private readonly timing: LeaseTiming,
    private readonly clock: Clock,
  ) {
    this.lastRenewOk = clock.now();
  }

  /** Aborted when the lease is lost. */
  get signal(): AbortSignal {
    return this.controller.signal;
  }

  start(): void {
    this.timer = this.clock.setInterval(() => void this.renew(), this.timing.renewEveryMs);
  }

  /** Held and renewed recently enough to act on. Check before every side effect. */
  valid(): boolean {
    if (this.lostAt !== undefined || this.released) return false;
    if (this.clock.now() - this.lastRenewOk > this.timing.validForMs) {
      this.lostRenewAt ??= this.lastRenewOk + this.timing.renewEveryMs;
      this.lose(`the last renew was ${Math.round((this.clock.now() - this.lastRenewOk) / 1000)} s ago (the process was paused or renewals hung)`);
      return false;
    }
    return true;
  }

  private lose(reason: string): void {
    if (this.lostAt !== undefined) return;
    this.lostAt = this.clock.now();
    this.lostReason = reason;
    this.timer?.cancel();
    this.controller.abort(new LullError("LULL_E_CANCELLED", `lease ${this.id} lost: ${reason}`));
  }

  private async renew(): Promise<void> {
    if (this.renewing || this.released || this.lostAt !== undefined) return;
    if (!this.valid()) return;
    this.renewing = true;
    const at = this.clock.now();
    try {
      const quorate = await withTimeout(this.fs.quorate(), this.timing.renewTimeoutMs, this.clock);
      if (!quorate) throw Object.assign(new Error(`cfs-lock '${this.id}' error: no quorum!`), { code: "EACCES" });
      // utime(0, now): fractional seconds reach pmxcfs as a timespec; a scaled clock needs them.
      await withTimeout(this.fs.utime(this.path, at / 1000), this.timing.renewTimeoutMs, this.clock);
      if (this.lostAt === undefined) {
        if (this.clock.now() - at > this.timing.renewTimeoutMs) (this.lostRenewAt ??= at), this.lose("the renew took longer than its timeout");
        else this.lastRenewOk = at;
      }
    } catch (err) {
      this.lostRenewAt ??= at;
      this.lose(`renew failed: ${(err as Error).message}`);
    } finally {
      this.renewing = false;
    }
  }

  /** Stops renewing without rmdir (the work under it may still be going); pmxcfs frees the lock after its timeout. */
  abandon(): void {
    this.lose("abandoned: the work did not stop");
    this.released = true;
  }

  /** Releases (rmdir) unless lost; never waits longer than the release timeout. */
  async release(): Promise<"released" | "lost" | "abandoned"> {
    if (this.released) return "released";
    this.released = true;
    this.timer?.cancel();
    if (this.lostAt !== undefined) return "lost";
    try {
      await withTimeout(this.fs.rmdir(this.path), this.timing.releaseTimeoutMs, this.clock);
      return "released";
    } catch {
      return "abandoned";
    }
  }
}

async function withTimeout<T>(p: Promise<T>, ms: number, clock: Clock): Promise<T> {
  const stop = new AbortController();
  try {
    return await Promise.race([
      p,
      clock.sleep(ms, stop.signal).then(() => {
        throw Object.assign(new Error(`no answer within ${ms} ms`), { code: "ETIMEDOUT" });
      }),
    ]);
  } finally {
    stop.abort();
  }
}
