// The agent's part in the cluster (when `cluster.enabled`): the cluster listener, serving other
// nodes' agents that present their node credentials (TLS with this node's pve-ssl.pem; the guard
// lets a node principal make only read-only calls, auth/rules.ts), and the clients this agent
// uses to call the other nodes as itself (`peers`). Everything is read from the cluster file
// system at `schedules.clusterRoot`.
import { isIP } from "node:net";
import { LullError, localNodeName, loadNodeCredential, openClusterPeers, type ClusterPeers, type Clock, type Logger } from "@lull/shared";
import type { AgentServer } from "@lull/proto";
import type { CallLimiter } from "../auth/rate-limit.js";
import type { RuleContext } from "../auth/rules.js";
import type { AgentConfig } from "../config.js";
import { listenClusterServer } from "../grpc/server.js";
import { nodeAuthenticator } from "./node-auth.js";
import { NodeList } from "./node-list.js";

export interface ClusterPart {
  /** `host:port` of the cluster listener. */
  address: string;
  port: number;
  /** This agent's clients of the other nodes' agents, with its node credential. */
  peers: ClusterPeers;
  close(graceMs: number): Promise<void>;
}

export interface ClusterPartOptions {
  config: Readonly<AgentConfig>;
  implementation: AgentServer;
  log: Logger;
  clock: Clock;
  limiter?: CallLimiter | undefined;
  context?: RuleContext | undefined;
}

export async function startClusterPart(o: ClusterPartOptions): Promise<ClusterPart | undefined> {
  const { config } = o;
  if (!config.cluster.enabled) return undefined;
  const root = config.schedules.clusterRoot;
  const log = o.log.child({ component: "cluster" });
  const local = await localNodeName(root).catch((err: unknown) => {
    throw new LullError("LULL_E_CONFIG_INVALID", `cluster.enabled: ${root}/local does not lead to this node's directory: ${(err as Error).message}`);
  });
  if (local !== config.node) {
    throw new LullError("LULL_E_CONFIG_INVALID", `cluster.enabled: node is ${config.node} but ${root}/local is node ${local}'s; set node to the Proxmox node name`);
  }
  const credential = await loadNodeCredential(root, config.node);
  const nodes = new NodeList({ root, clock: o.clock, log });
  await nodes.start();
  try {
    const host = isIP(config.cluster.listenHost) === 6 ? `[${config.cluster.listenHost}]` : config.cluster.listenHost;
    const server = await listenClusterServer({
      address: `${host}:${config.cluster.port}`,
      implementation: o.implementation,
      log,
      clock: o.clock,
      tls: { keyPem: credential.keyPem, certChainPem: credential.certPem },
      auth: { authenticate: nodeAuthenticator({ self: config.node, nodes, clock: o.clock }), limiter: o.limiter, context: o.context },
    });
    const peers = await openClusterPeers({ root, port: config.cluster.port, credential });
    log.info({ address: server.address, node: config.node }, "cluster listener listening");
    return {
      address: server.address,
      port: server.port,
      peers,
      async close(graceMs) {
        peers.close();
        nodes.close();
        await server.shutdown(graceMs);
      },
    };
  } catch (err) {
    nodes.close();
    throw err;
  }
}
