// Foreign restore points: vzdump archives (and PBS snapshots) of a vzdump guest that are in its
// backup storage but were not made by a Lull job — a backup from the GUI, a Proxmox backup job, an
// archive copied in. They are listed through Proxmox (`pvesh get /nodes/<node>/storage/<storage>/
// content --content backup --vmid <id>`, never by reading the storage behind its back) and
// recorded as points with origin `foreign`, so ListBackups / `lullctl backups` show them and they
// can be restored to a guest or verified. Retention keeps them unless `prune.includeForeign`.
//
// No duplicate for an archive Lull made itself: a Lull point names its archive by path
// (`<dump dir>/<file>`) or PBS snapshot id (`ct/<id>/<time>`); a listed volid matching one of those
// (same file name, or the same snapshot) is that point — also when a scan recorded it while the
// run that wrote it had not ended yet (the scan after the run's `done` retires that record). A foreign point's id is derived from its
// volid, so a rescan finds it again; one no longer listed (deleted outside Lull) is marked removed.
import { createHash } from "node:crypto";
import { Consistency, SnapshotMode } from "@lull/proto";
import { LullError, type CommandRunner, type Logger } from "@lull/shared";
import type { Ledger } from "../ledger/ledger.js";
import type { RestorePoint } from "./restore-point.js";
import type { BackupStore } from "./store.js";

/** One entry of the storage's content listing (pve-storage's volume_list fields that Lull uses). */
export interface ContentEntry {
  volid: string;
  ctime?: number;
  size?: number;
  format?: string;
  subtype?: string;
  vmid?: number | string;
  notes?: string;
  protected?: number | boolean;
  verification?: { state?: string; upid?: string };
}

export interface ForeignScanDeps {
  runner: CommandRunner;
  node: string;
  backups: BackupStore;
  ledger: Ledger;
  log?: Logger | undefined;
  pvesh?: string | undefined;
}

export interface ForeignScanResult {
  added: string[];
  removed: string[];
}

export const foreignPointId = (volid: string) => `b-f${createHash("sha256").update(volid).digest("hex").slice(0, 16)}`;

/** The part of a volid that identifies the archive: its file name, or the PBS snapshot id. */
function archiveKey(location: string): string {
  const pbs = /(?:^|:backup\/)((?:ct|vm|host)\/[^/]+\/[^/]+)$/.exec(location);
  if (pbs) return pbs[1]!;
  return location.split("/").at(-1) ?? location;
}

/** The storage's backups of one guest, as Proxmox lists them. */
export async function listBackupContent(deps: Pick<ForeignScanDeps, "runner" | "node" | "pvesh">, storage: string, vmid: string, signal?: AbortSignal): Promise<ContentEntry[]> {
  const path = `/nodes/${deps.node}/storage/${storage}/content`;
  const r = await deps.runner.run(deps.pvesh ?? "pvesh", ["get", path, "--content", "backup", "--vmid", vmid, "--output-format", "json"], { signal, timeoutMs: 120_000, reject: false });
  if (r.exitCode !== 0) {
    throw new LullError("LULL_E_COMMAND_FAILED", `pvesh get ${path} exited ${r.exitCode}: ${r.stderr.trim().split("\n").at(-1) ?? ""} (is the storage '${storage}' of guest ${vmid} right?)`);
  }
  const parsed = JSON.parse(r.stdout) as unknown;
  if (!Array.isArray(parsed)) throw new LullError("LULL_E_COMMAND_FAILED", `pvesh get ${path} did not answer a list`);
  return (parsed as ContentEntry[]).filter((e) => typeof e.volid === "string");
}

/** A listed archive that no Lull point names, as a foreign point. */
export function foreignPoint(guestId: string, e: ContentEntry): RestorePoint {
  const pbs = typeof e.format === "string" && e.format.startsWith("pbs-");
  const verified = e.verification?.state;
  return {
    id: foreignPointId(e.volid),
    // backups.job_id is unique and no job made this point: its own id stands in.
    jobId: foreignPointId(e.volid),
    guestId,
    groupRunId: "",
    engine: "vzdump",
    mode: SnapshotMode.SNAPSHOT_MODE_UNSPECIFIED,
    // Made without Lull: nothing quiesced the stacks, so at best crash-consistent.
    consistency: Consistency.CONSISTENCY_CRASH,
    snapshotAt: undefined,
    createdAt: new Date((e.ctime ?? 0) * 1000),
    locationKind: pbs ? "pbs-snapshot" : "vzdump-archive",
    location: e.volid,
    sizeBytes: e.size ?? 0,
    stacks: [],
    protected: e.protected === 1 || e.protected === true,
    notes: e.notes ?? "",
    origin: "foreign",
    sha256: "",
    manifest: undefined,
    integrity: verified ? { state: verified === "ok" ? "ok" : "failed", detail: `PBS verification: ${verified}`, at: new Date() } : undefined,
  };
}

/** Records the foreign archives of each guest's storage and marks those gone as removed. */
export async function scanForeignPoints(deps: ForeignScanDeps, guests: ReadonlyArray<{ id: string; storage: string }>, signal?: AbortSignal): Promise<ForeignScanResult> {
  const result: ForeignScanResult = { added: [], removed: [] };
  for (const guest of guests) {
    const listed = await listBackupContent(deps, guest.storage, guest.id, signal);
    const points = deps.backups.list({ guestId: guest.id, limit: 1_000_000 });
    const ownKeys = new Set(points.filter((p) => p.origin === "lull").map((p) => archiveKey(p.location)));
    const listedIds = new Set<string>();
    deps.ledger.commit(() => {
      for (const e of listed) {
        if (String(e.vmid ?? guest.id) !== guest.id || ownKeys.has(archiveKey(e.volid))) continue;
        const id = foreignPointId(e.volid);
        listedIds.add(id);
        if (deps.backups.get(id)) continue;
        deps.backups.insert(foreignPoint(guest.id, e));
        result.added.push(id);
      }
      // A foreign point of this storage that is no longer listed was deleted outside Lull; one that
      // a Lull point now names (a scan saw the archive of a run before that run ended) is the same
      // backup and goes from the catalog too.
      for (const p of points) {
        if (p.origin !== "foreign" || !p.location.startsWith(`${guest.storage}:`)) continue;
        if (listedIds.has(p.id) && !ownKeys.has(archiveKey(p.location))) continue;
        deps.backups.markRemoved(p.id, deps.ledger.now());
        result.removed.push(p.id);
      }
    });
  }
  if (result.added.length > 0 || result.removed.length > 0) deps.log?.info(result, "foreign restore points scanned");
  return result;
}

export interface ForeignScansHandle {
  /** Scans now (also what the timer and each ended backup run). */
  scan(): Promise<ForeignScanResult | undefined>;
  close(): Promise<void>;
}

/** Scans at start, every `intervalMs`, and after each backup of a guest ends (a run's `done`). */
export function startForeignScans(
  deps: ForeignScanDeps & { guests: ReadonlyArray<{ id: string; storage: string }>; intervalMs: number; subscribeDone?: (fn: () => void) => void },
): ForeignScansHandle {
  let running: Promise<ForeignScanResult | undefined> | undefined;
  const scan = () => {
    running ??= scanForeignPoints(deps, deps.guests)
      .catch((err: unknown) => {
        deps.log?.warn({ err }, "foreign restore points could not be listed; retried at the next scan");
        return undefined;
      })
      .finally(() => {
        running = undefined;
      });
    return running;
  };
  const timer = setInterval(() => void scan(), deps.intervalMs);
  timer.unref();
  deps.subscribeDone?.(() => void scan());
  void scan();
  return {
    scan,
    async close() {
      clearInterval(timer);
      await running;
    },
  };
}
