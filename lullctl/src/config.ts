// Where lullctl finds the agent, validated once. This is the only place lullctl reads the environment.
//   --socket PATH  > --agent ADDR  (both: a usage error)
//   $LULL_SOCKET   > $LULL_AGENT
//   default: the local socket /run/lull/agent.sock (root on the node; no token needed)
// Over the network (`--agent host:port`) the agent wants TLS and a token: --tls-fingerprint
// (or $LULL_TLS_FINGERPRINT) pins its CA, --token-file (or $LULL_TOKEN_FILE) holds an operator
// token (`lull-agent token create --operator`). A token is never sent over plain TCP.
// With --cluster, the cluster file system is $LULL_CLUSTER_ROOT (default /etc/pve) and the other
// nodes' cluster listeners are on port $LULL_CLUSTER_PORT (default 7451, the agent's cluster.port).
import { readFileSync } from "node:fs";
import { DEFAULT_AGENT_SOCKET, DEFAULT_CLUSTER_PORT, LullError, TOKEN_PATTERN, normalizeFingerprint, type AgentTlsTrust } from "@lull/shared";

export const DEFAULT_SOCKET = DEFAULT_AGENT_SOCKET;

export interface LullctlSettings {
  /** `host:port` or `unix:///path`. */
  readonly agentAddress: string;
  /** Deadline of each unary call. */
  readonly callTimeoutMs: number;
  /** How long `backup --wait` keeps reconnecting to a lost agent before it gives up. */
  readonly waitReconnectGiveUpMs: number;
  /** Bearer token for a network agent. */
  readonly token?: string | undefined;
  /** Trust in a network agent's certificate. */
  readonly tls?: AgentTlsTrust | undefined;
  /** --cluster: where pmxcfs is mounted, and the port of every node's cluster listener. */
  readonly clusterRoot: string;
  readonly clusterPort: number;
  /** --cluster: each node's deadline. */
  readonly nodeTimeoutMs: number;
}

/** Connection flags as parsed from the command line. */
export interface ConnectionFlags {
  agent?: string | undefined;
  socket?: string | undefined;
  tokenFile?: string | undefined;
  tlsFingerprint?: string | undefined;
  nodeTimeoutMs?: number | undefined;
}

const HOST_PORT = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9][A-Za-z0-9.-]*):(\d{1,5})$/;

const usage = (message: string) => new LullError("LULL_E_INVALID_ARGUMENT", message);

function checkAddress(address: string, source: string): string {
  if (address.startsWith("unix://") && address.length > "unix://".length) return address;
  const m = HOST_PORT.exec(address);
  if (!m || Number(m[2]) < 1 || Number(m[2]) > 65535) {
    throw usage(`${source}: agent address must be host:port or unix:///path, got "${address}"`);
  }
  return address;
}

function socketAddress(path: string, source: string): string {
  if (!path.startsWith("/") || path.length > 100) throw usage(`${source}: the socket must be an absolute path (at most 100 characters), got "${path}"`);
  return `unix://${path}`;
}

function readToken(path: string, source: string): string {
  let token: string;
  try {
    token = readFileSync(path, "utf8").trim();
  } catch (err) {
    throw usage(`${source}: cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? "error"}`);
  }
  if (!TOKEN_PATTERN.test(token)) throw usage(`${source}: ${path} does not hold a token as \`lull-agent token create\` prints it`);
  return token;
}

const nonEmpty = (v: string | undefined) => (v !== undefined && v !== "" ? v : undefined);

export function resolveSettings(f: ConnectionFlags = {}, env: NodeJS.ProcessEnv): LullctlSettings {
  if (f.agent !== undefined && f.socket !== undefined) throw usage("give --socket or --agent, not both");
  const envSocket = nonEmpty(env.LULL_SOCKET);
  const envAgent = nonEmpty(env.LULL_AGENT);
  const agentAddress =
    f.socket !== undefined
      ? socketAddress(f.socket, "--socket")
      : f.agent !== undefined
        ? checkAddress(f.agent, "--agent")
        : envSocket !== undefined
          ? socketAddress(envSocket, "LULL_SOCKET")
          : envAgent !== undefined
            ? checkAddress(envAgent, "LULL_AGENT")
            : `unix://${DEFAULT_SOCKET}`;
  const network = !agentAddress.startsWith("unix:");
  const tokenFile = f.tokenFile ?? nonEmpty(env.LULL_TOKEN_FILE);
  const fingerprint = f.tlsFingerprint ?? nonEmpty(env.LULL_TLS_FINGERPRINT);
  let tls: AgentTlsTrust | undefined;
  let token: string | undefined;
  if (network && fingerprint !== undefined) {
    try {
      tls = { fingerprint: normalizeFingerprint(fingerprint) };
    } catch (err) {
      throw usage(`--tls-fingerprint: ${(err as Error).message}`);
    }
  }
  if (network && tokenFile !== undefined) {
    if (!tls) throw usage("a token is only sent over TLS: give --tls-fingerprint (see `lull-agent cert fingerprint`) with --token-file");
    token = readToken(tokenFile, f.tokenFile !== undefined ? "--token-file" : "LULL_TOKEN_FILE");
  }
  const clusterRoot = nonEmpty(env.LULL_CLUSTER_ROOT) ?? "/etc/pve";
  if (!clusterRoot.startsWith("/")) throw usage(`LULL_CLUSTER_ROOT: must be an absolute path, got "${clusterRoot}"`);
  const portText = nonEmpty(env.LULL_CLUSTER_PORT);
  const clusterPort = portText === undefined ? DEFAULT_CLUSTER_PORT : Number(portText);
  if (!Number.isInteger(clusterPort) || clusterPort < 1 || clusterPort > 65535) throw usage(`LULL_CLUSTER_PORT: must be a port number, got "${portText}"`);
  return Object.freeze({
    agentAddress,
    callTimeoutMs: 10_000,
    waitReconnectGiveUpMs: 120_000,
    token,
    tls,
    clusterRoot,
    clusterPort,
    nodeTimeoutMs: f.nodeTimeoutMs ?? 5_000,
  });
}
