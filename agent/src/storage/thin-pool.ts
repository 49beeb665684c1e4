// LVM facts read with `lvs` (C locale, bytes, `:` separated) and the thin-pool guard: before any
// snapshot on LVM-thin (native lvmthin driver or vzdump of a guest with LVM-thin volumes) the
// pool's data% and metadata% are read and the snapshot is refused above the configured limits,
// or when lv_attr's health column says the pool is out of space or failed.
import { LullError } from "@lull/shared";
import type { CommandRunner } from "@lull/shared";

/** When a thin pool is too full to snapshot (the agent's `pve.thinPool`). */
export interface ThinPoolLimits {
  /** Refuse a snapshot when the pool's data use is above this (percent). */
  maxDataPercent: number;
  /** Refuse a snapshot when the pool's metadata use is above this (percent). */
  maxMetadataPercent: number;
}

export interface LvRow {
  vg: string;
  name: string;
  attr: string;
  pool: string;
  origin: string;
  sizeBytes: number;
  dataPercent: number | undefined;
  metadataPercent: number | undefined;
}

/** Environment of every LVM call: C locale (parsable numbers), no fd-leak warnings on stderr. */
export const LVM_ENV: Readonly<Record<string, string>> = { LC_ALL: "C", LVM_SUPPRESS_FD_WARNINGS: "1" };

const LV_FIELDS = "vg_name,lv_name,lv_attr,pool_lv,origin,lv_size,data_percent,metadata_percent";

/** argv of the lvs call that reads LV_FIELDS (for tests that check argv). */
export function lvsArgs(targets: readonly string[]): string[] {
  return ["--noheadings", "--separator", ":", "--units", "b", "--nosuffix", "--options", LV_FIELDS, ...targets];
}

function percent(text: string | undefined): number | undefined {
  if (text === undefined || text.trim() === "") return undefined;
  const n = Number(text.trim().replace(",", "."));
  return Number.isFinite(n) ? n : undefined;
}

/** Parses `lvs --noheadings --separator : -o <LV_FIELDS>` output. */
export function parseLvsRows(stdout: string): LvRow[] {
  const rows: LvRow[] = [];
  for (const line of stdout.split("\n")) {
    if (line.trim() === "") continue;
    const f = line.trim().split(":");
    if (f.length < 8) continue;
    rows.push({
      vg: f[0]!,
      name: f[1]!,
      attr: f[2]!,
      pool: f[3]!,
      origin: f[4]!,
      sizeBytes: Number(f[5]),
      dataPercent: percent(f[6]),
      metadataPercent: percent(f[7]),
    });
  }
  return rows;
}

export interface LvsOptions {
  signal?: AbortSignal | undefined;
  timeoutMs: number;
}

/** Reads LVs (`vg/lv` targets, a VG, or none for all); an unknown LV or VG throws LULL_E_COMMAND_FAILED. */
export async function readLvs(runner: CommandRunner, targets: readonly string[], options: LvsOptions): Promise<LvRow[]> {
  const result = await runner.run("lvs", lvsArgs(targets), {
    env: LVM_ENV,
    timeoutMs: options.timeoutMs,
    ...(options.signal !== undefined ? { signal: options.signal } : {}),
  });
  return parseLvsRows(result.stdout);
}

export interface ThinPoolUsage {
  vg: string;
  pool: string;
  attr: string;
  dataPercent: number;
  metadataPercent: number;
}

const HEALTH: Record<string, string> = {
  D: "out of data space",
  M: "metadata read-only (out of metadata space)",
  F: "failed",
  X: "in an unknown state",
};

/** Throws LULL_E_SNAPSHOT_FAILED when the pool is above the limits or unhealthy. */
export function checkThinPool(usage: ThinPoolUsage, limits: ThinPoolLimits): void {
  const name = `${usage.vg}/${usage.pool}`;
  const health = HEALTH[usage.attr[8] ?? "-"];
  if (health !== undefined) {
    throw new LullError("LULL_E_SNAPSHOT_FAILED", `thin pool ${name} is ${health} (lv_attr ${usage.attr}); refusing to snapshot`);
  }
  const overData = usage.dataPercent > limits.maxDataPercent;
  const overMeta = usage.metadataPercent > limits.maxMetadataPercent;
  if (!overData && !overMeta) return;
  throw new LullError(
    "LULL_E_SNAPSHOT_FAILED",
    `thin pool ${name} is too full to snapshot safely: data ${usage.dataPercent.toFixed(2)}% (limit ${limits.maxDataPercent}%), ` +
      `metadata ${usage.metadataPercent.toFixed(2)}% (limit ${limits.maxMetadataPercent}%)`,
  );
}

/** Reads each pool once and checks it; returns the figures (for logs and notes). */
export async function guardThinPools(
  runner: CommandRunner,
  pools: readonly { vg: string; pool: string }[],
  limits: ThinPoolLimits,
  options: LvsOptions,
): Promise<ThinPoolUsage[]> {
  const unique = [...new Map(pools.map((p) => [`${p.vg}/${p.pool}`, p])).values()];
  if (unique.length === 0) return [];
  const rows = await readLvs(runner, unique.map((p) => `${p.vg}/${p.pool}`), options);
  const usages: ThinPoolUsage[] = [];
  for (const p of unique) {
    const row = rows.find((r) => r.vg === p.vg && r.name === p.pool);
    if (!row || row.attr[0] !== "t") {
      throw new LullError("LULL_E_SNAPSHOT_FAILED", `${p.vg}/${p.pool} is not a thin pool (lvs shows ${row ? `lv_attr ${row.attr}` : "nothing"})`);
    }
    if (row.dataPercent === undefined || row.metadataPercent === undefined) {
      throw new LullError("LULL_E_SNAPSHOT_FAILED", `thin pool ${p.vg}/${p.pool}: lvs reported no data%/metadata% (is it active?)`);
    }
    const usage = { vg: p.vg, pool: p.pool, attr: row.attr, dataPercent: row.dataPercent, metadataPercent: row.metadataPercent };
    checkThinPool(usage, limits);
    usages.push(usage);
  }
  return usages;
}
