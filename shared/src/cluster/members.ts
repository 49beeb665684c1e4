// The cluster's member list as pmxcfs shows it in `<root>/.members` (JSON: `nodename`, the local
// node, and `nodelist`: name → { id, online, ip }), and the local node's name from `<root>/local`
// (a symlink to `nodes/<name>`). Both are read-only views pmxcfs keeps up to date; nothing here
// caches them.
import { readFile, readlink } from "node:fs/promises";
import { basename, join } from "node:path";
import { LullError } from "../errors.js";

export const MEMBERS_FILE = ".members";

/** A node name as Proxmox allows it (a DNS label). */
export const NODE_NAME = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;

export interface ClusterMember {
  name: string;
  /** Corosync node id. */
  id: number;
  online: boolean;
  /** The address pmxcfs knows the node by (corosync ring 0); empty when it has none. */
  ip: string;
}

export interface ClusterMembers {
  /** The node whose pmxcfs wrote the file. */
  localNode: string;
  /** Every node of the cluster, sorted by name; a single node that is not clustered lists itself. */
  nodes: ClusterMember[];
}

const invalid = (why: string) => new LullError("LULL_E_CONFIG_INVALID", `${MEMBERS_FILE}: ${why}`);

/** Parses the text of `.members`; throws LULL_E_CONFIG_INVALID naming what is wrong. */
export function parseMembers(text: string): ClusterMembers {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    throw invalid("not JSON");
  }
  if (typeof doc !== "object" || doc === null) throw invalid("not a JSON object");
  const { nodename, nodelist } = doc as { nodename?: unknown; nodelist?: unknown };
  if (typeof nodename !== "string" || !NODE_NAME.test(nodename)) throw invalid("nodename is missing or not a node name");
  if (nodelist === undefined) return { localNode: nodename, nodes: [{ name: nodename, id: 0, online: true, ip: "" }] };
  if (typeof nodelist !== "object" || nodelist === null || Array.isArray(nodelist)) throw invalid("nodelist is not an object");
  const nodes: ClusterMember[] = [];
  for (const [name, entry] of Object.entries(nodelist as Record<string, unknown>)) {
    if (!NODE_NAME.test(name)) throw invalid(`nodelist: ${JSON.stringify(name.slice(0, 64))} is not a node name`);
    const e = (typeof entry === "object" && entry !== null ? entry : {}) as { id?: unknown; online?: unknown; ip?: unknown };
    nodes.push({
      name,
      id: typeof e.id === "number" ? e.id : 0,
      online: e.online === 1 || e.online === true,
      ip: typeof e.ip === "string" ? e.ip : "",
    });
  }
  nodes.sort((a, b) => a.name.localeCompare(b.name));
  return { localNode: nodename, nodes };
}

/** Reads and parses `<root>/.members`. */
export async function readMembers(root: string): Promise<ClusterMembers> {
  return parseMembers(await readFile(join(root, MEMBERS_FILE), "utf8"));
}

/** The local node's name: the target of `<root>/local` (`nodes/<name>`). */
export async function localNodeName(root: string): Promise<string> {
  const target = await readlink(join(root, "local"));
  const name = basename(target);
  if (!NODE_NAME.test(name)) throw new LullError("LULL_E_CONFIG_INVALID", `${join(root, "local")} does not lead to nodes/<node name>`);
  return name;
}
