// The cluster listener (agent/SECURITY.md, "Node credentials"): where other agents of the cluster
// reach this one with their node credentials. Off by default; the cluster file system it reads
// (CA, node certificates, `.members`) is the one `schedules.clusterRoot` names.
import { z } from "@lull/shared";
import { DEFAULT_CLUSTER_PORT } from "@lull/shared";

export const clusterConfigSchema = z.strictObject({
  /** Serve node-to-node calls (TLS with this node's pve-ssl.pem, callers' node credentials). */
  enabled: z.boolean().default(false),
  /** Address to bind; the member list's address of each node must reach it. */
  listenHost: z.string().min(1).max(253).default("0.0.0.0"),
  /** The same port on every node (peers dial `<member ip>:<port>`). */
  port: z.number().int().min(1).max(65_535).default(DEFAULT_CLUSTER_PORT),
});

export type ClusterConfig = z.output<typeof clusterConfigSchema>;
