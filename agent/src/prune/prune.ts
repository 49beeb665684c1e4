// Prune of restore points: the plan is the pure decision (decide.ts) over what the catalog holds
// now; a dry run returns it, a real prune computes the same plan and removes exactly its `remove`
// points. A native archive is deleted from archiveDir; a vzdump or PBS point is deleted through
// Proxmox (`pvesh delete /nodes/<node>/storage/<storage>/content/<volid>`), never behind the
// storage's back. A removed point's row stays in the catalog with `removed_at` set.
import { rm } from "node:fs/promises";
import { isAbsolute, relative, resolve } from "node:path";
import { Phase } from "@lull/proto";
import { LullError, type CommandRunner, type Logger } from "@lull/shared";
import type { BackupStore } from "../backups/store.js";
import type { RestorePoint } from "../backups/restore-point.js";
import type { JobStore } from "../jobs/store.js";
import type { Ledger } from "../ledger/ledger.js";
import type { VerifyStore } from "../verify/store.js";
import { keepOptionsFor, type PruneConfig } from "./config.js";
import { decideRetention, type KeepOptions, type PruneDecision } from "./decide.js";

export interface PrunePlan {
  guestId: string;
  keep: KeepOptions;
  lastRunFailed: boolean;
  decisions: Array<PruneDecision & { location: string; locationKind: RestorePoint["locationKind"] }>;
}

export interface PrunerDeps {
  config: PruneConfig;
  /** The configured consistency groups (a member's keep options may be its group's). */
  groups?: ReadonlyArray<{ id: string; guests: readonly string[] }>;
  node: string;
  archiveDir: string;
  backups: BackupStore;
  jobs: JobStore;
  verify: VerifyStore;
  ledger: Ledger;
  runner: CommandRunner;
  log: Logger;
  /** `pvesh` (the fake toolbox's in tests). */
  pvesh?: string;
  /**
   * The storage vzdump writes to (`pve.vzdump.storage`): a Lull-made vzdump point names its archive
   * by path (vzdump's TARGET), which is removed as `<storage>:backup/<file>`, and PBS snapshot ids
   * (`ct/101/…`) as `<storage>:backup/<snapshot>`.
   */
  vzdumpStorage?: string | undefined;
}

/** `<storage>:<content>/<file>`, as Proxmox names a volume. */
const VOLID = /^([A-Za-z][A-Za-z0-9_.-]*):(.+)$/;

export class PointPruner {
  constructor(private readonly deps: PrunerDeps) {}

  /** The verification store it reads (shared with the metrics). */
  get verifyStore(): VerifyStore {
    return this.deps.verify;
  }

  keepFor(guestId: string): KeepOptions {
    return keepOptionsFor(this.deps.config, guestId, this.deps.groups ?? []).keep;
  }

  /** What a prune of the guest would do now (the dry run). */
  plan(guestId: string): PrunePlan {
    const points = this.deps.backups.list({ guestId, limit: 1_000_000 });
    const verified = this.deps.verify.passedStacksByPoint(guestId);
    // The newest backup run that ended: a failure (or cancel) means nothing is pruned.
    // Backups only: a restore in place is no run of the guest's backups.
    const last = this.deps.jobs.listJobs({ guestId, limit: 50 }).find((j) => j.kind !== "restore" && [Phase.PHASE_DONE, Phase.PHASE_FAILED, Phase.PHASE_CANCELLED].includes(j.phase));
    const lastRunFailed = last !== undefined && last.phase !== Phase.PHASE_DONE;
    const keep = this.keepFor(guestId);
    const decisions = decideRetention({
      points: points.map((p) => ({
        id: p.id,
        at: p.snapshotAt ?? p.createdAt,
        protected: p.protected,
        foreign: p.origin === "foreign" && !this.deps.config.includeForeign,
        verifiedStacks: verified.get(p.id) ?? [],
      })),
      keep,
      lastRunFailed,
    });
    const byId = new Map(points.map((p) => [p.id, p]));
    return { guestId, keep, lastRunFailed, decisions: decisions.map((d) => ({ ...d, location: byId.get(d.id)!.location, locationKind: byId.get(d.id)!.locationKind })) };
  }

  /** Prunes the guest: removes exactly the plan's `remove` points; returns the plan it carried out. */
  async prune(guestId: string, signal?: AbortSignal): Promise<PrunePlan & { removed: string[]; failures: Array<{ id: string; error: string }> }> {
    const plan = this.plan(guestId);
    const removed: string[] = [];
    const failures: Array<{ id: string; error: string }> = [];
    for (const d of plan.decisions) {
      if (d.action !== "remove") continue;
      try {
        await this.removeLocation(d.locationKind, d.location, signal);
        this.deps.ledger.commit(() => this.deps.backups.markRemoved(d.id, this.deps.ledger.now()));
        removed.push(d.id);
        this.deps.log.info({ guestId, pointId: d.id, location: d.location, reasons: d.reasons }, "restore point pruned");
      } catch (err) {
        failures.push({ id: d.id, error: err instanceof Error ? err.message : String(err) });
        this.deps.log.error({ err, guestId, pointId: d.id }, "restore point could not be pruned; it stays in the catalog");
      }
    }
    return { ...plan, removed, failures };
  }

  private async removeLocation(kind: RestorePoint["locationKind"], location: string, signal?: AbortSignal): Promise<void> {
    if (kind === "native-archive") {
      const rel = relative(resolve(this.deps.archiveDir), resolve(location));
      if (rel.startsWith("..") || isAbsolute(rel)) {
        throw new LullError("LULL_E_INVALID_ARGUMENT", `archive ${location} is not inside archiveDir ${this.deps.archiveDir}: not removed`);
      }
      await rm(location, { force: true });
      return;
    }
    if (this.deps.vzdumpStorage !== undefined && !VOLID.test(location)) {
      if (kind === "vzdump-archive" && isAbsolute(location)) location = `${this.deps.vzdumpStorage}:backup/${location.split("/").at(-1)}`;
      else if (kind === "pbs-snapshot") location = `${this.deps.vzdumpStorage}:backup/${location}`;
    }
    const m = VOLID.exec(location);
    if (!m) {
      throw new LullError("LULL_E_INVALID_ARGUMENT", `point location ${location} is not a Proxmox volume id (<storage>:<volume>): remove it with pvesh or the GUI`);
    }
    await this.deps.runner.run(this.deps.pvesh ?? "pvesh", ["delete", `/nodes/${this.deps.node}/storage/${m[1]}/content/${location}`], { signal, timeoutMs: 300_000 });
  }
}
