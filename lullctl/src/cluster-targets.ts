// `--cluster`: every node of the cluster as lullctl reaches it. The member list comes from pmxcfs
// (`<clusterRoot>/.members`); this node is asked over its usual connection (the local socket), every
// other node over its cluster listener (`<member ip>:<clusterPort>`) with this node's credential —
// so root on a node sees what the cluster's agents let a node read, and nothing more.
import { isIP } from "node:net";
import { LullError, asLullError, connectNode, loadNodeCredential, readMembers, type AgentApi, type NodeCredential } from "@lull/shared";
import type { LullctlSettings } from "./config.js";

export interface NodeTarget {
  node: string;
  /** This node (asked over lullctl's usual connection). */
  local: boolean;
  /** Undefined when the node cannot even be asked (no address, no credential): `problem` says why. */
  api?: AgentApi | undefined;
  problem?: LullError | undefined;
}

export interface ClusterTargets {
  nodes: NodeTarget[];
  close(): void;
}

const hostPort = (ip: string, port: number) => (isIP(ip) === 6 ? `[${ip}]:${port}` : `${ip}:${port}`);

/** Reads the member list and makes one client per node; `localApi` is this node's. */
export async function openClusterTargets(settings: LullctlSettings, localApi: AgentApi): Promise<ClusterTargets> {
  const members = await readMembers(settings.clusterRoot).catch((err: unknown) => {
    const why = err instanceof LullError ? err.message : ((err as NodeJS.ErrnoException).code ?? String(err));
    throw new LullError("LULL_E_CONFIG_INVALID", `--cluster: cannot read the cluster's member list ${settings.clusterRoot}/.members (${why}): run it as root on a node of a Proxmox cluster (or set LULL_CLUSTER_ROOT)`);
  });
  const remote = members.nodes.filter((n) => n.name !== members.localNode);
  let credential: NodeCredential | undefined;
  let credentialProblem: LullError | undefined;
  if (remote.length > 0) {
    try {
      credential = await loadNodeCredential(settings.clusterRoot, members.localNode);
    } catch (err) {
      credentialProblem = asLullError(err);
    }
  }
  const opened: AgentApi[] = [];
  const nodes: NodeTarget[] = members.nodes.map((m) => {
    if (m.name === members.localNode) return { node: m.name, local: true, api: localApi };
    if (!credential) return { node: m.name, local: false, problem: credentialProblem };
    if (m.ip === "") return { node: m.name, local: false, problem: new LullError("LULL_E_AGENT_UNREACHABLE", "the member list gives no address for it") };
    const api = connectNode({ node: m.name, address: hostPort(m.ip, settings.clusterPort), credential, api: { callTimeoutMs: settings.nodeTimeoutMs } });
    opened.push(api);
    return { node: m.name, local: false, api };
  });
  return {
    nodes,
    close: () => {
      for (const api of opened) api.close();
    },
  };
}

export type NodeAnswer<T> = { node: string; ok: true; value: T } | { node: string; ok: false; error: LullError };

/** Asks every node at once; a node that fails or does not answer within `timeoutMs` is an error answer. */
export async function askEveryNode<T>(targets: ClusterTargets, timeoutMs: number, ask: (api: AgentApi, signal: AbortSignal) => Promise<T>): Promise<NodeAnswer<T>[]> {
  return Promise.all(
    targets.nodes.map(async (t): Promise<NodeAnswer<T>> => {
      if (!t.api) return { node: t.node, ok: false, error: t.problem ?? new LullError("LULL_E_AGENT_UNREACHABLE", "cannot be asked") };
      const signal = AbortSignal.timeout(timeoutMs);
      try {
        const value = await Promise.race([
          ask(t.api, signal),
          new Promise<never>((_, reject) => signal.addEventListener("abort", () => reject(new LullError("LULL_E_AGENT_UNREACHABLE", `no answer within ${timeoutMs} ms`)), { once: true })),
        ]);
        return { node: t.node, ok: true, value };
      } catch (err) {
        return { node: t.node, ok: false, error: asLullError(err) };
      }
    }),
  );
}
