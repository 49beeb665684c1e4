// Guest discovery on this node: `pvesh get /nodes/<node>/lxc|qemu --output-format json` for the
// guests, `pct config <id>` / `qm config <id>` for their volumes, storage.cfg for each volume's
// storage type and device/dataset/path.
import { readFile } from "node:fs/promises";
import { LullError } from "@lull/shared";
import type { CommandRunner } from "@lull/shared";
import { VMID } from "./config.js";
import { guestVolumes, parseGuestConfig, type ExcludedVolume, type GuestType, type PveVolume } from "./guest-config.js";
import { parseStorageCfg, type StorageEntry } from "./storage-cfg.js";

export interface GuestSummary {
  vmid: number;
  type: GuestType;
  name: string;
  status: string;
  lock?: string;
  template: boolean;
}

export interface PveGuest extends GuestSummary {
  volumes: PveVolume[];
  excluded: ExcludedVolume[];
  /** The raw current config (`pct config` / `qm config`). */
  config: ReadonlyMap<string, string>;
}

export interface DiscoveryDeps {
  runner: CommandRunner;
  node: string;
  storageCfgPath: string;
  commandTimeoutMs: number;
}

/** Parses pvesh's JSON list of guests (tolerates vmid as a string, as older versions print it). */
export function parseGuestList(json: string, type: GuestType): GuestSummary[] {
  const data: unknown = JSON.parse(json);
  if (!Array.isArray(data)) throw new LullError("LULL_E_INTERNAL", `pvesh returned ${typeof data}, not a list`);
  return data.map((raw: Record<string, unknown>) => {
    const vmid = Number(raw.vmid);
    if (!Number.isInteger(vmid) || !VMID.test(String(vmid))) throw new LullError("LULL_E_INTERNAL", `pvesh returned a guest without a valid vmid`);
    const guest: GuestSummary = {
      vmid,
      type,
      name: typeof raw.name === "string" ? raw.name : `${type === "lxc" ? "CT" : "VM"}${vmid}`,
      status: typeof raw.status === "string" ? raw.status : "unknown",
      template: raw.template === 1 || raw.template === "1" || raw.template === true,
    };
    if (typeof raw.lock === "string" && raw.lock !== "") guest.lock = raw.lock;
    return guest;
  });
}

export async function readStorages(path: string): Promise<Map<string, StorageEntry>> {
  const text = await readFile(path, "utf8").catch((err: unknown) => {
    throw new LullError("LULL_E_CONFIG_INVALID", `pve.storageCfgPath: cannot read ${path}: ${err instanceof Error ? err.message : String(err)}`);
  });
  return parseStorageCfg(text);
}

export class GuestDiscovery {
  constructor(private readonly deps: DiscoveryDeps) {
    if (!/^[A-Za-z0-9][A-Za-z0-9.-]{0,62}$/.test(deps.node)) throw new LullError("LULL_E_CONFIG_INVALID", `node: invalid node name ${deps.node}`);
  }

  private run(file: string, args: string[], signal?: AbortSignal) {
    return this.deps.runner.run(file, args, { timeoutMs: this.deps.commandTimeoutMs, ...(signal !== undefined ? { signal } : {}) });
  }

  /** Every guest on this node (containers first), from pvesh. */
  async list(signal?: AbortSignal): Promise<GuestSummary[]> {
    const out: GuestSummary[] = [];
    for (const type of ["lxc", "qemu"] as const) {
      const r = await this.run("pvesh", ["get", `/nodes/${this.deps.node}/${type}`, "--output-format", "json"], signal);
      out.push(...parseGuestList(r.stdout, type).sort((a, b) => a.vmid - b.vmid));
    }
    return out;
  }

  /** One guest with its volumes; LULL_E_UNKNOWN_GUEST when it is not on this node. */
  async guest(vmid: number, signal?: AbortSignal): Promise<PveGuest> {
    const summary = (await this.list(signal)).find((g) => g.vmid === vmid);
    if (!summary) throw new LullError("LULL_E_UNKNOWN_GUEST", `guest ${vmid} is not on node ${this.deps.node}`);
    return this.describe(summary, await readStorages(this.deps.storageCfgPath), signal);
  }

  async all(signal?: AbortSignal): Promise<PveGuest[]> {
    const storages = await readStorages(this.deps.storageCfgPath);
    const guests: PveGuest[] = [];
    for (const summary of await this.list(signal)) guests.push(await this.describe(summary, storages, signal));
    return guests;
  }

  private async describe(summary: GuestSummary, storages: ReadonlyMap<string, StorageEntry>, signal?: AbortSignal): Promise<PveGuest> {
    const tool = summary.type === "lxc" ? "pct" : "qm";
    const r = await this.run(tool, ["config", String(summary.vmid)], signal);
    const config = parseGuestConfig(r.stdout);
    const { volumes, excluded } = guestVolumes(summary.type, config, storages);
    return { ...summary, config, volumes, excluded };
  }
}

/** A container's `vzdump` snapshot is committed when its current config says `parent: vzdump`. */
export async function vzdumpSnapshotCommitted(runner: CommandRunner, vmid: number, timeoutMs: number): Promise<boolean> {
  const r = await runner.run("pct", ["config", String(vmid)], { timeoutMs });
  return parseGuestConfig(r.stdout).get("parent") === "vzdump";
}
