// The agent's gRPC servers: the lull.v1.Agent service, standard health checking and server
// reflection, on two listeners. The network listener (TLS unless `listen.insecure`) serves
// controllers and remote operators, every call authenticated by a bearer token and held to its
// scope; the local unix socket (owner-only) serves root on the node — lullctl — as the operator.
// Both register the same implementation behind the guard (auth/guard.ts). A third listener, the
// cluster listener (`listenClusterServer`, cluster/daemon-part.ts), serves other nodes' agents
// with their node credentials, behind the same guard.
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { Server, ServerCredentials, type ServerOptions, type UntypedServiceImplementation } from "@grpc/grpc-js";
import { loadSync } from "@grpc/proto-loader";
import { ReflectionService } from "@grpc/reflection";
import { HealthImplementation } from "grpc-health-check";
import { AgentService, protoDir, protoFile, type AgentServer } from "@lull/proto";
import { LullError, type Clock, type Logger } from "@lull/shared";
import { guardService, type Authenticate } from "../auth/guard.js";
import { LOCAL_OPERATOR } from "../auth/principal.js";
import type { CallLimiter } from "../auth/rate-limit.js";
import type { RuleContext } from "../auth/rules.js";
import { withSafeDecoding } from "../auth/safe-decode.js";
import { withSharedEncoding } from "./shared-encoding.js";
import { prepareSocketPath, removeSocket, restrictSocket } from "./local-socket.js";

export const AGENT_SERVICE_NAME = "lull.v1.Agent";

export const SERVER_OPTIONS: ServerOptions = {
  // Requests are small (ids, a reason of at most 1 KiB): 64 KiB bounds what one call can make the agent buffer.
  "grpc.max_receive_message_length": 64 * 1024,
  // Keepalive: ping every client every 10 s, drop it if a ping is not answered within 5 s
  // (`serverOptions(keepaliveMs)`, listen.keepaliveMs). A controller that stops answering — a frozen
  // guest, a stopped process — thus loses its connection, and the stack lease its event stream
  // held (jobs/lease-holds.ts), within 15 s; the lease then runs out after its TTL.
  "grpc.keepalive_time_ms": 10_000,
  "grpc.keepalive_timeout_ms": 5_000,
  // Clients ping every 10 s (DEFAULT_CHANNEL_OPTIONS); grpc-js servers do not police client pings, so nothing to permit.
  // Bounds the calls one connection can hold open (watch streams included).
  "grpc.max_concurrent_streams": 256,
};

/** SERVER_OPTIONS with a keepalive of `keepaliveMs` (a ping every `keepaliveMs`, answered within half of it). */
export function serverOptions(keepaliveMs: number | undefined): ServerOptions {
  if (keepaliveMs === undefined) return SERVER_OPTIONS;
  return { ...SERVER_OPTIONS, "grpc.keepalive_time_ms": keepaliveMs, "grpc.keepalive_timeout_ms": Math.max(500, Math.floor(keepaliveMs / 2)) };
}

export interface AgentServerHandle {
  /** `host:port` actually bound (the port resolved when 0 was asked for). */
  address: string;
  port: number;
  /** The local operator socket, when one was asked for. */
  socketPath?: string | undefined;
  /** Marks the service NOT_SERVING, then waits at most `graceMs` for calls to finish before forcing. */
  shutdown(graceMs: number): Promise<void>;
}

export interface ListenOptions {
  address: string;
  implementation: AgentServer;
  log: Logger;
  clock: Clock;
  /** Key and certificate chain (PEM) of the network listener; undefined: plain TCP (`listen.insecure`). */
  tls?: { keyPem: string; certChainPem: string } | undefined;
  /** Who a network call comes from (bearer tokens), the limits per caller, state the scope rules read. */
  auth: { authenticate: Authenticate; limiter?: CallLimiter | undefined; context?: RuleContext | undefined };
  /** The local operator socket; undefined: none. */
  socketPath?: string | undefined;
  /** listen.keepaliveMs: how often each connection is pinged (SERVER_OPTIONS' 10 s when unset). */
  keepaliveMs?: number | undefined;
}

/** grpc.health.v1's proto as grpc-health-check ships it (its build/src/health.js loads ../../proto). */
const HEALTH_PROTO_FILE = "health/v1/health.proto";
function healthProtoDir(): string {
  return join(dirname(createRequire(import.meta.url).resolve("grpc-health-check")), "..", "..", "proto");
}

/** What both listeners' servers register: the service definition (safe decoding) and reflection, built once. */
interface Shared {
  definition: typeof AgentService;
  reflection: ReflectionService;
}

/** One grpc.Server with the guarded service, health and reflection. */
function buildServer(shared: Shared, implementation: UntypedServiceImplementation, log: Logger, listener: "network" | "socket" | "cluster", auth: ListenOptions["auth"], keepaliveMs?: number) {
  const { definition } = shared;
  const server = new Server(serverOptions(keepaliveMs));
  server.addService(
    definition,
    guardService({
      definition,
      implementation,
      listener,
      log,
      authenticate: listener === "socket" ? () => LOCAL_OPERATOR : auth.authenticate,
      ...(listener !== "socket" && auth.limiter ? { limiter: auth.limiter } : {}),
      ...(auth.context ? { context: auth.context } : {}),
    }),
  );
  const health = new HealthImplementation({ "": "SERVING", [AGENT_SERVICE_NAME]: "SERVING" });
  health.addToServer(server);
  shared.reflection.addToServer(server);
  return { server, health };
}

function bind(server: Server, target: string, credentials: ServerCredentials, key: string): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    server.bindAsync(target, credentials, (err, bound) => {
      if (err) reject(new LullError("LULL_E_CONFIG_INVALID", `${key}: cannot listen on ${target}: ${err.message}`, { cause: err }));
      else resolve(bound);
    });
  });
}

/** `host:port` → host and port; IPv6 hosts are written `[::1]:7450`. */
export function splitAddress(address: string): { host: string; port: number } {
  const m = /^(\[[^\]]+\]|[^:]+):(\d{1,5})$/.exec(address);
  const port = m ? Number(m[2]) : NaN;
  if (!m || port > 65535) {
    throw new LullError("LULL_E_CONFIG_INVALID", `listen.address: ${address} is not host:port`);
  }
  return { host: m[1] as string, port };
}

function sharedParts(): Shared {
  return {
    definition: withSharedEncoding(withSafeDecoding(AgentService)),
    // keepCase: the descriptor served names fields as the .proto does (error_code, not errorCode).
    reflection: new ReflectionService(loadSync([protoFile, HEALTH_PROTO_FILE], { includeDirs: [protoDir, healthProtoDir()], keepCase: true })),
  };
}

/** NOT_SERVING, then at most `graceMs` for open calls before they are forced closed. */
async function shutdownServers(servers: readonly { server: Server; health: HealthImplementation }[], graceMs: number, clock: Clock, log: Logger): Promise<void> {
  for (const { health } of servers) {
    health.setStatus("", "NOT_SERVING");
    health.setStatus(AGENT_SERVICE_NAME, "NOT_SERVING");
  }
  const timer = new AbortController();
  const graceful = Promise.all(servers.map(({ server }) => new Promise<void>((resolve) => server.tryShutdown(() => resolve())))).then(() => true);
  const expired = clock.sleep(graceMs, timer.signal).then(
    () => false,
    () => true,
  );
  const clean = await Promise.race([graceful, expired]);
  timer.abort();
  if (!clean) {
    log.warn({ graceMs }, "calls still open at shutdown; closing them");
    for (const { server } of servers) server.forceShutdown();
  }
}

export interface ClusterListenOptions {
  address: string;
  implementation: AgentServer;
  log: Logger;
  clock: Clock;
  /** This node's key and certificate (pve-ssl.key, pve-ssl.pem). */
  tls: { keyPem: string; certChainPem: string };
  auth: ListenOptions["auth"];
}

/** The cluster listener: TLS with the node's certificate, every call authenticated by `auth` (node credentials). */
export async function listenClusterServer(options: ClusterListenOptions): Promise<AgentServerHandle> {
  const { host } = splitAddress(options.address);
  const built = buildServer(sharedParts(), options.implementation, options.log, "cluster", options.auth);
  const credentials = ServerCredentials.createSsl(null, [{ private_key: Buffer.from(options.tls.keyPem), cert_chain: Buffer.from(options.tls.certChainPem) }], false);
  const port = await bind(built.server, options.address, credentials, "cluster.listenHost/cluster.port");
  return {
    address: `${host}:${port}`,
    port,
    shutdown: (graceMs) => shutdownServers([built], graceMs, options.clock, options.log),
  };
}

export async function listenAgentServer(options: ListenOptions): Promise<AgentServerHandle> {
  const { host } = splitAddress(options.address);
  const shared = sharedParts();
  const servers: { server: Server; health: HealthImplementation }[] = [];
  const network = buildServer(shared, options.implementation, options.log, "network", options.auth, options.keepaliveMs);
  servers.push(network);
  const credentials = options.tls
    ? ServerCredentials.createSsl(null, [{ private_key: Buffer.from(options.tls.keyPem), cert_chain: Buffer.from(options.tls.certChainPem) }], false)
    : ServerCredentials.createInsecure();
  const port = await bind(network.server, options.address, credentials, "listen.address");
  try {
    if (options.socketPath !== undefined) {
      await prepareSocketPath(options.socketPath);
      const local = buildServer(shared, options.implementation, options.log, "socket", options.auth, options.keepaliveMs);
      servers.push(local);
      await bind(local.server, `unix:${options.socketPath}`, ServerCredentials.createInsecure(), "listen.socket");
      await restrictSocket(options.socketPath);
    }
  } catch (err) {
    for (const s of servers) s.server.forceShutdown();
    throw err;
  }
  const address = `${host}:${port}`;

  return {
    address,
    port,
    socketPath: options.socketPath,
    async shutdown(graceMs: number) {
      await shutdownServers(servers, graceMs, options.clock, options.log);
      if (options.socketPath !== undefined) await removeSocket(options.socketPath);
    },
  };
}
