// Polling a condition in tests: resolves once `cond` holds (it may be async, e.g. a call to the
// agent), rejects after `ms`.
import { setTimeout as sleep } from "node:timers/promises";

export async function waitUntil(cond: () => boolean | Promise<boolean>, ms = 15_000, what = "condition"): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`${what} not met within ${ms} ms`);
    await sleep(20);
  }
}
