// The restorer as the agent daemon runs it: over the job ledger's database, native points through
// the safe extractor, vzdump/PBS points through Proxmox's own tools (pve/guest-restore.ts) when a
// guest of this agent uses vzdump. The paths a restore may never overlap are the agent's own roots
// and every native guest's volumes.
import { createExecaLauncher, createExecaRunner, type Clock, type CommandRunner, type Launcher, type Logger } from "@lull/shared";
import { usesVzdump } from "../engines/vzdump/daemon-part.js";
import type { AgentConfig } from "../config.js";
import type { JobLedger } from "../jobs/ledger.js";
import { archiveOf, destroyCreatedGuest, guestConfig, restoreGuest } from "../pve/guest-restore.js";
import { EventKind, QuiescePolicy } from "@lull/proto";
import { LIMITS, LullError } from "@lull/shared";
import { eventFor, newJobRecord, type JobRecord } from "../jobs/job.js";
import { newJobId } from "../jobs/job-id.js";
import { quiesceSettings } from "../jobs/policy.js";
import type { JobRunner } from "../jobs/runner.js";
import { Restorer, type GuestRestorePort, type HoldJobs } from "./restorer.js";
import { RestoreStore } from "./store.js";

export function guardedPaths(config: Readonly<AgentConfig>): Array<{ key: string; path: string }> {
  const out: Array<{ key: string; path: string }> = (["dataDir", "archiveDir", "stagingDir"] as const).map((key) => ({ key, path: config[key] }));
  config.guests.forEach((g, i) => {
    if (g.engine === "native") g.volumes.forEach((v, j) => out.push({ key: `guests.${i}.volumes.${j} (${g.id}/${v.name})`, path: v.path }));
  });
  if (config.verify.scratchDir) out.push({ key: "verify.scratchDir", path: config.verify.scratchDir });
  return out;
}

/** The guest side of restores over Proxmox's tools (the fake toolbox's in tests). */
export function guestRestorePort(deps: { runner: CommandRunner; launcher: Launcher; log: Logger; pbsStorage: string | undefined }): GuestRestorePort {
  const { runner, launcher, log, pbsStorage } = deps;
  return {
    async restore(point, r) {
      const result = await restoreGuest(
        { runner, launcher, log },
        {
          point,
          vmid: r.vmid,
          force: r.force,
          start: r.start,
          storage: r.storage,
          pbsStorage,
          signal: r.signal,
          onVmid: (vmid) => r.onVmid(vmid),
          // The tool's own percent (qmrestore's `progress N%`), as guest-restore.ts reads it.
          onProgress: (p) => {
            if (p.percent !== undefined) r.onPercent(p.percent);
          },
        },
      );
      return { vmid: result.vmid };
    },
    async cleanUp(point, vmid) {
      const { type } = archiveOf(point, pbsStorage);
      const conf = await guestConfig({ runner }, type, vmid);
      if (!conf) return `guest ${vmid} had not been created`;
      if (conf.get("lock") !== "create") return `guest ${vmid} exists and is not a half-created restore (no lock: create); it was left as it is`;
      await destroyCreatedGuest({ runner }, type, vmid);
      return `the half-created guest ${vmid} (lock: create) was destroyed at the next start`;
    },
  };
}

/** The jobs (kind restore) that hold a native guest's stacks for a restore in place, over the job ledger and runner. */
export function holdJobs(deps: { config: Readonly<AgentConfig>; ledger: JobLedger; runner: JobRunner; clock: Clock }): HoldJobs {
  const { config, ledger, runner, clock } = deps;
  return {
    start(guestId, restoreId, requestedBy, engine) {
      const guest = config.guests.find((g) => g.id === guestId);
      if (!guest) throw new LullError("LULL_E_UNKNOWN_GUEST", `guest ${guestId} is not configured`);
      const now = clock.now();
      const record: JobRecord = {
        ...newJobRecord({
          id: newJobId(now),
          guestId,
          engine: guest.engine,
          // Every stack must be stopped before a volume is replaced: a refusal or a timeout fails the restore.
          policy: QuiescePolicy.QUIESCE_POLICY_FAIL,
          quiesceTimeoutMs: quiesceSettings(config, guest).quiesceTimeoutMs,
          idempotencyKey: `restore:${restoreId}`,
          requestedBy: `restore ${restoreId}${requestedBy ? ` (${requestedBy})` : ""}`.slice(0, LIMITS.requestedBy),
          now,
        }),
        kind: "restore",
      };
      const { job } = ledger.create(record, eventFor(record, EventKind.EVENT_KIND_PHASE, { message: `restore ${restoreId} in place: holds the stacks stopped while the volumes are replaced` }));
      runner.start(job, engine);
      return job;
    },
    get: (jobId) => ledger.store.getJob(jobId),
    cancel: async (jobId, reason) => {
      await runner.cancel(jobId, reason);
    },
    finish(jobId, archivePath, archiveBytes) {
      ledger.apply(jobId, { type: "done", archivePath, archiveBytes });
    },
    liveStacks: (guestId) => ledger.store.liveStacks(guestId, clock.now()),
  };
}

export function createRestorer(deps: { config: Readonly<AgentConfig>; ledger: JobLedger; runner: JobRunner; log: Logger; clock: Clock }): Restorer {
  const { config, ledger, clock } = deps;
  const log = deps.log.child({ part: "restore" });
  const guests = usesVzdump(config) ? guestRestorePort({ runner: createExecaRunner({ log }), launcher: createExecaLauncher(), log, pbsStorage: config.pve.vzdump.storage }) : undefined;
  const nativeGuests = new Map(config.guests.flatMap((g) => (g.engine === "native" ? [[g.id, { volumes: g.volumes.map((v) => ({ name: v.name, path: v.path })) }] as const] : [])));
  return new Restorer({
    store: new RestoreStore(ledger.store.database),
    backups: ledger.backups,
    ledger: ledger.ledger,
    guarded: guardedPaths(config),
    guests,
    nativeGuests,
    holds: holdJobs({ config, ledger, runner: deps.runner, clock }),
    log,
    clock,
  });
}
