// The agent's gRPC server: the lull.v1.Agent service, standard health checking and
// server reflection, on one insecure TCP listener (per-guest credentials come later).
import { Server, ServerCredentials, type ServerOptions } from "@grpc/grpc-js";
import { loadSync } from "@grpc/proto-loader";
import { ReflectionService } from "@grpc/reflection";
import { HealthImplementation } from "grpc-health-check";
import { AgentService, protoDir, protoFile, type AgentServer } from "@lull/proto";
import { LullError, type Clock, type Logger } from "@lull/shared";

export const AGENT_SERVICE_NAME = "lull.v1.Agent";

export const SERVER_OPTIONS: ServerOptions = {
  // Requests are small (ids, a reason of at most 1 KiB): 64 KiB bounds what one call can make the agent buffer.
  "grpc.max_receive_message_length": 64 * 1024,
  // Keepalive: ping idle clients every 30 s, drop them if a ping is not answered within 10 s.
  "grpc.keepalive_time_ms": 30_000,
  "grpc.keepalive_timeout_ms": 10_000,
  // Clients ping every 10 s (DEFAULT_CHANNEL_OPTIONS); grpc-js servers do not police client pings, so nothing to permit.
  // Bounds the calls one connection can hold open (watch streams included).
  "grpc.max_concurrent_streams": 256,
};

export interface AgentServerHandle {
  /** `host:port` actually bound (the port resolved when 0 was asked for). */
  address: string;
  port: number;
  /** Marks the service NOT_SERVING, then waits at most `graceMs` for calls to finish before forcing. */
  shutdown(graceMs: number): Promise<void>;
}

export interface ListenOptions {
  address: string;
  implementation: AgentServer;
  log: Logger;
  clock: Clock;
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

export async function listenAgentServer(options: ListenOptions): Promise<AgentServerHandle> {
  const { host } = splitAddress(options.address);
  const server = new Server(SERVER_OPTIONS);
  server.addService(AgentService, options.implementation);
  const health = new HealthImplementation({ "": "SERVING", [AGENT_SERVICE_NAME]: "SERVING" });
  health.addToServer(server);
  new ReflectionService(loadSync(protoFile, { includeDirs: [protoDir] })).addToServer(server);

  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(options.address, ServerCredentials.createInsecure(), (err, bound) => {
      if (err) reject(new LullError("LULL_E_CONFIG_INVALID", `listen.address: cannot listen on ${options.address}: ${err.message}`, { cause: err }));
      else resolve(bound);
    });
  });
  const address = `${host}:${port}`;

  return {
    address,
    port,
    async shutdown(graceMs: number) {
      health.setStatus("", "NOT_SERVING");
      health.setStatus(AGENT_SERVICE_NAME, "NOT_SERVING");
      const timer = new AbortController();
      const graceful = new Promise<boolean>((resolve) => server.tryShutdown(() => resolve(true)));
      const expired = options.clock.sleep(graceMs, timer.signal).then(
        () => false,
        () => true,
      );
      const clean = await Promise.race([graceful, expired]);
      timer.abort();
      if (!clean) {
        options.log.warn({ graceMs }, "calls still open at shutdown; closing them");
        server.forceShutdown();
      }
    },
  };
}
