// Clients of the other agents of the cluster, as this node: TLS to each node's cluster listener,
// whose certificate must be signed by the cluster CA and name the node called; every call carries
// this node's certificate and a fresh assertion signed with its key, meant for that node.
import { X509Certificate } from "node:crypto";
import { isIP } from "node:net";
import { ChannelCredentials, InterceptingCall, type Interceptor } from "@grpc/grpc-js";
import { AgentClient } from "@lull/proto";
import { agentApiOf, type AgentApi, type AgentApiOptions } from "../client/agent-api.js";
import { LullError } from "../errors.js";
import { DEFAULT_CHANNEL_OPTIONS } from "../grpc.js";
import { certificateProblem, loadNodeCredential, type NodeCredential } from "./credential.js";
import { readMembers } from "./members.js";
import { NODE_ASSERTION_KEY, NODE_CERT_KEY, encodeCertificate, signNodeAssertion } from "./node-assertion.js";

/** The cluster listener's default port (the agent's own listener is 7450). */
export const DEFAULT_CLUSTER_PORT = 7451;

/** Channel credentials that accept only node `node`'s certificate from the cluster CA. */
export function nodeChannelCredentials(caPem: string, node: string, now: () => number = Date.now): ChannelCredentials {
  return ChannelCredentials.createSsl(Buffer.from(caPem), null, null, {
    checkServerIdentity: (_host, cert) => {
      const why = cert?.raw ? certificateProblem(new X509Certificate(cert.raw).toString(), caPem, node, now()) : "no certificate";
      return why === undefined ? undefined : new LullError("LULL_E_NODE_CREDENTIAL", `refusing node ${node}'s TLS certificate: ${why}`);
    },
  });
}

/** Adds this node's certificate and a fresh assertion for `audience` to every call. */
export function nodeCredentialInterceptor(credential: NodeCredential, audience: string, now: () => number = Date.now): Interceptor {
  const cert = encodeCertificate(credential.certPem);
  return (options, nextCall) =>
    new InterceptingCall(nextCall(options), {
      start(metadata, listener, next) {
        metadata.set(NODE_CERT_KEY, cert);
        metadata.set(NODE_ASSERTION_KEY, signNodeAssertion({ node: credential.node, audience, key: credential.key, now: now() }));
        next(metadata, listener);
      },
    });
}

/** A client of node `node`'s cluster listener at `address` (`host:port`), as `credential`'s node. */
export function connectNode(o: { node: string; address: string; credential: NodeCredential; api?: AgentApiOptions }): AgentApi {
  const client = new AgentClient(o.address, nodeChannelCredentials(o.credential.caPem, o.node), {
    ...DEFAULT_CHANNEL_OPTIONS,
    // The certificate names the node, whatever address it is reached by.
    "grpc.ssl_target_name_override": o.node,
    // A peer that is down is reported as such; the caller decides when to try again.
    "grpc.max_reconnect_backoff_ms": 1_000,
    interceptors: [nodeCredentialInterceptor(o.credential, o.node)],
  });
  return agentApiOf(client, o.api);
}

export interface ClusterPeers {
  /** This node's name. */
  readonly self: string;
  /** A client of `node`'s agent (one per node and address, kept until close). */
  clientFor(node: string): Promise<AgentApi>;
  close(): void;
}

export interface ClusterPeersOptions {
  /** Where pmxcfs is mounted (`/etc/pve`). */
  root: string;
  /** The cluster listener's port on every node. */
  port?: number;
  /** The local node's credential; default: loaded from `root`. */
  credential?: NodeCredential;
  api?: AgentApiOptions;
}

const hostPort = (ip: string, port: number) => (isIP(ip) === 6 ? `[${ip}]:${port}` : `${ip}:${port}`);

/** Clients of the cluster's agents, addressed by the member list's addresses. */
export async function openClusterPeers(o: ClusterPeersOptions): Promise<ClusterPeers> {
  const credential = o.credential ?? (await loadNodeCredential(o.root));
  const port = o.port ?? DEFAULT_CLUSTER_PORT;
  const clients = new Map<string, { address: string; api: AgentApi }>();
  return {
    self: credential.node,
    async clientFor(node) {
      const member = (await readMembers(o.root)).nodes.find((n) => n.name === node);
      if (!member) throw new LullError("LULL_E_INVALID_ARGUMENT", `node ${node} is not a member of the cluster`);
      if (member.ip === "") throw new LullError("LULL_E_AGENT_UNREACHABLE", `the member list gives no address for node ${node}`);
      const address = hostPort(member.ip, port);
      const known = clients.get(node);
      if (known?.address === address) return known.api;
      known?.api.close();
      const api = connectNode({ node, address, credential, ...(o.api ? { api: o.api } : {}) });
      clients.set(node, { address, api });
      return api;
    },
    close() {
      for (const { api } of clients.values()) api.close();
      clients.clear();
    },
  };
}
