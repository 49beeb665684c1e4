// For the jobs' own tests: a job ledger on a fresh SQLite file that the test removes, and a queued
// job of one guest in it.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { EventKind, QuiescePolicy } from "@lull/proto";
import { silentLogger, systemClock } from "@lull/shared";
import { EventBus } from "../events/bus.js";
import { eventFor, newJobRecord } from "./job.js";
import { newJobId } from "./job-id.js";
import { JobLedger } from "./ledger.js";
import { JobStore } from "./store.js";

export interface TempJobLedger {
  store: JobStore;
  bus: EventBus;
  ledger: JobLedger;
  /** Creates a queued job of `guestId`; returns its id. */
  createJob(guestId: string, engine?: "native" | "vzdump"): string;
}

export function openTempJobLedger(t: { after: (fn: () => void) => void }, prefix: string): TempJobLedger {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const store = JobStore.open(join(dir, "agent.db"));
  t.after(() => {
    store.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const bus = new EventBus(silentLogger());
  const ledger = new JobLedger({ store, bus, log: silentLogger(), clock: systemClock });
  return {
    store,
    bus,
    ledger,
    createJob(guestId, engine = "native") {
      const record = newJobRecord({
        id: newJobId(Date.now()),
        guestId,
        engine,
        policy: QuiescePolicy.QUIESCE_POLICY_FAIL,
        idempotencyKey: `k-${guestId}`,
        quiesceTimeoutMs: 60_000,
        requestedBy: "test",
        now: Date.now(),
      });
      return ledger.create(record, eventFor(record, EventKind.EVENT_KIND_PHASE)).job.id;
    },
  };
}
