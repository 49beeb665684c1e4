// Port: the stack the controller stops and starts, or pauses and unpauses (a compose project, user
// commands, ...). Adapters: ./command.ts, ./compose.ts. Every operation takes an explicit timeout
// from its adapter's config and an optional AbortSignal that reaches the child process.
import type { Clock } from "@lull/shared";
import { LullError } from "@lull/shared";

/**
 * `partial`: some parts run and some do not (a compose project with one service down, or some of its
 * containers paused). `paused`: every part is frozen (only drivers that can see it report it).
 */
export type StackStatus = "running" | "stopped" | "partial" | "paused";

export interface StackDriver {
  /** `command` | `compose`, for logs. */
  readonly kind: string;
  /** How long `status` may take to confirm a stop/start after the command returned. */
  readonly verifyTimeoutMs: number;
  /** Stops the stack; throws LullError(LULL_E_STACK_STOP_FAILED) when the command fails. */
  stop(signal?: AbortSignal): Promise<void>;
  /** Starts the stack; idempotent (starting a running stack is fine). LULL_E_STACK_START_FAILED on failure. */
  start(signal?: AbortSignal): Promise<void>;
  status(signal?: AbortSignal): Promise<StackStatus>;
  /** Freezes the stack's processes without stopping them (absent: the driver cannot pause). LULL_E_STACK_STOP_FAILED on failure. */
  pause?: ((signal?: AbortSignal) => Promise<void>) | undefined;
  /** Thaws what `pause` froze. LULL_E_STACK_START_FAILED on failure. */
  unpause?: ((signal?: AbortSignal) => Promise<void>) | undefined;
  /** `status` reports `paused` (so a pause can be verified); false: the pause command's exit status is all there is. */
  readonly reportsPaused?: boolean;
  /**
   * Checked once at the controller's start: what cannot run as configured (a missing binary, a
   * status that cannot tell), each naming the config key; empty when all is well. Absent: nothing to check.
   */
  preflight?: ((signal?: AbortSignal) => Promise<string[]>) | undefined;
  /** The configured commands that cannot be executed (a missing binary), each naming its key; checked before every quiesce. */
  missing?: (() => string[]) | undefined;
}

const VERIFY_INTERVAL_MS = 100;

/** Polls `status` until it reports `want`, or throws with `code` once `verifyTimeoutMs` has passed. */
async function waitForStatus(
  driver: StackDriver,
  want: StackStatus,
  code: "LULL_E_STACK_STOP_FAILED" | "LULL_E_STACK_START_FAILED",
  clock: Clock,
  signal?: AbortSignal,
): Promise<void> {
  const until = clock.now() + driver.verifyTimeoutMs;
  for (;;) {
    const seen = await driver.status(signal);
    if (seen === want) return;
    if (clock.now() >= until) {
      throw new LullError(code, `the ${driver.kind} stack is ${seen}, expected ${want} (checked for ${driver.verifyTimeoutMs} ms)`);
    }
    await clock.sleep(VERIFY_INTERVAL_MS, signal);
  }
}

/** Stops the stack and verifies it stopped; returns how long that took (ms). */
export async function stopAndVerify(driver: StackDriver, clock: Clock, signal?: AbortSignal): Promise<number> {
  const t0 = clock.now();
  try {
    await driver.stop(signal);
    await waitForStatus(driver, "stopped", "LULL_E_STACK_STOP_FAILED", clock, signal);
  } catch (err) {
    throw asStackError(err, "LULL_E_STACK_STOP_FAILED", "stopping the stack failed");
  }
  return clock.now() - t0;
}

/** Starts the stack and verifies it is up; returns how long that took (ms). */
export async function startAndVerify(driver: StackDriver, clock: Clock, signal?: AbortSignal): Promise<number> {
  const t0 = clock.now();
  try {
    await driver.start(signal);
    await waitForStatus(driver, "running", "LULL_E_STACK_START_FAILED", clock, signal);
  } catch (err) {
    throw asStackError(err, "LULL_E_STACK_START_FAILED", "starting the stack failed");
  }
  return clock.now() - t0;
}

/** Pauses the stack and, when the driver can see it, verifies every part is paused; returns how long that took (ms). */
export async function pauseAndVerify(driver: StackDriver, clock: Clock, signal?: AbortSignal): Promise<number> {
  const t0 = clock.now();
  try {
    if (driver.pause === undefined) throw new LullError("LULL_E_STACK_STOP_FAILED", `the ${driver.kind} driver cannot pause`);
    await driver.pause(signal);
    if (driver.reportsPaused === true) await waitForStatus(driver, "paused", "LULL_E_STACK_STOP_FAILED", clock, signal);
  } catch (err) {
    throw asStackError(err, "LULL_E_STACK_STOP_FAILED", "pausing the stack failed");
  }
  return clock.now() - t0;
}

/**
 * Unpauses the stack and verifies it runs; returns how long that took (ms). A failing unpause is
 * forgiven when the stack runs anyway (compose fails on containers that were not paused, e.g. after
 * a pause that failed half-way, but thaws the others); a stack found stopped is started.
 */
export async function unpauseAndVerify(driver: StackDriver, clock: Clock, signal?: AbortSignal): Promise<number> {
  const t0 = clock.now();
  let unpauseError: unknown;
  try {
    if (driver.unpause === undefined) throw new LullError("LULL_E_STACK_START_FAILED", `the ${driver.kind} driver cannot unpause`);
    await driver.unpause(signal);
  } catch (err) {
    unpauseError = err;
  }
  try {
    if ((await driver.status(signal)) === "stopped") {
      await driver.start(signal);
    }
    await waitForStatus(driver, "running", "LULL_E_STACK_START_FAILED", clock, signal);
  } catch (err) {
    throw asStackError(unpauseError ?? err, "LULL_E_STACK_START_FAILED", "unpausing the stack failed");
  }
  return clock.now() - t0;
}

function asStackError(
  err: unknown,
  code: "LULL_E_STACK_STOP_FAILED" | "LULL_E_STACK_START_FAILED",
  what: string,
): LullError {
  if (err instanceof LullError && err.code === code) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new LullError(code, `${what}: ${message}`, { cause: err });
}
