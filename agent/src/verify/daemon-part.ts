// The verifier as the agent daemon runs it: over the job ledger's database, commands through
// execa, vzdump/PBS points on scratch guests (vzdump-replica.ts), replicas under `verify.scratchDir` (`<stagingDir>/verify` by default) with the agent's prefix, and a
// look for work whenever a backup job ends done.
import { join } from "node:path";
import { EventKind, Phase } from "@lull/proto";
import { createExecaLauncher, createExecaRunner, type Clock, type Logger } from "@lull/shared";
import type { AgentConfig } from "../config.js";
import type { EventBus } from "../events/bus.js";
import type { JobLedger } from "../jobs/ledger.js";
import { safeNativeExtractor } from "./extract-native.js";
import { replicaRestorer } from "./restore.js";
import { VerifyStore } from "./store.js";
import { vzdumpReplicaRestorer } from "./vzdump-replica.js";
import { Verifier } from "./verifier.js";

export interface VerifierPartDeps {
  config: Readonly<AgentConfig>;
  ledger: JobLedger;
  bus: EventBus;
  log: Logger;
  clock: Clock;
}

export function createVerifier(deps: VerifierPartDeps): Verifier {
  const { config, ledger, log, clock } = deps;
  const runner = createExecaRunner({ log });
  const launcher = createExecaLauncher();
  // vzdump/PBS points: a scratch guest (vzdump-replica.ts); PBS snapshots are on the vzdump target storage.
  const restoreGuest = vzdumpReplicaRestorer({ runner, launcher, pbsStorageOf: () => config.pve.vzdump.storage, log: log.child({ part: "verify" }) });
  const verifier = new Verifier({
    config: config.verify,
    prefix: config.prefix,
    // Its own folder: the storage drivers sweep every `<prefix>*` entry of stagingDir itself.
    scratchDir: config.verify.scratchDir ?? join(config.stagingDir, "verify"),
    store: new VerifyStore(ledger.store.database),
    backups: ledger.backups,
    ledger: ledger.ledger,
    runner,
    launcher,
    restore: replicaRestorer({ extractNative: safeNativeExtractor(), restoreGuest }),
    log: log.child({ part: "verify" }),
    clock,
  });
  if (config.verify.checks.length > 0) {
    const guests = new Set(config.verify.checks.map((c) => c.guest));
    deps.bus.subscribe({}, (event) => {
      if (event.kind === EventKind.EVENT_KIND_PHASE && event.phase === Phase.PHASE_DONE && guests.has(event.guestId)) void verifier.tick();
    });
  }
  return verifier;
}
