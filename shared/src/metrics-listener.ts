// The metrics listener of the agent and the controller: plain HTTP on an address of its own,
// GET /metrics only (text exposition format of the registry it is given, prom-client's in both).
// Pages mounted on it (the agent's status page under /status) answer their own paths first.
// Nothing here changes state; every other path or method is refused.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { LullError } from "./errors.js";
import type { Logger } from "./logger.js";

/** What the listener needs of a metrics registry (prom-client's Registry has it). */
export interface MetricsSource {
  metrics(): Promise<string>;
  readonly contentType: string;
}

/** A page mounted on the listener: true when it answered the request (it must never throw). */
export type HttpHandler = (req: IncomingMessage, res: ServerResponse) => boolean;

export interface MetricsListener {
  /** `host:port` actually bound (the real port when 0 was asked). */
  address: string;
  port: number;
  close(): Promise<void>;
}

function splitAddress(address: string, key: string): { host: string; port: number } {
  const at = address.lastIndexOf(":");
  const host = address.slice(0, at).replace(/^\[(.*)\]$/, "$1");
  const port = Number(address.slice(at + 1));
  if (!host || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw new LullError("LULL_E_CONFIG_INVALID", `${key}: ${address} is not host:port (e.g. 127.0.0.1:9750)`);
  }
  return { host, port };
}

export async function listenMetrics(options: { address: string; registry: MetricsSource; log: Logger; key?: string; handlers?: readonly HttpHandler[] }): Promise<MetricsListener> {
  const key = options.key ?? "metrics.address";
  const { host, port } = splitAddress(options.address, key);
  const server: Server = createServer((req, res) => {
    for (const handle of options.handlers ?? []) if (handle(req, res)) return;
    const path = (req.url ?? "/").split("?")[0];
    if (path !== "/metrics") {
      res.writeHead(404, { "content-type": "text/plain" }).end("not found: the metrics are at /metrics\n");
      return;
    }
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.writeHead(405, { allow: "GET, HEAD", "content-type": "text/plain" }).end("method not allowed\n");
      return;
    }
    options.registry.metrics().then(
      (body) => res.writeHead(200, { "content-type": options.registry.contentType }).end(req.method === "HEAD" ? undefined : body),
      (err: unknown) => {
        options.log.error({ err }, "metrics collection failed");
        res.writeHead(500, { "content-type": "text/plain" }).end("metrics collection failed\n");
      },
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", (err: NodeJS.ErrnoException) =>
      reject(new LullError("LULL_E_CONFIG_INVALID", `${key}: cannot listen on ${options.address}: ${err.code ?? err.message}`)),
    );
    server.listen(port, host, () => resolve());
  });
  const bound = server.address() as AddressInfo;
  const shown = bound.family === "IPv6" ? `[${bound.address}]:${bound.port}` : `${bound.address}:${bound.port}`;
  options.log.info({ address: shown }, "metrics listening");
  return {
    address: shown,
    port: bound.port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
