// The metrics listener: plain HTTP on an address of its own, GET /metrics only (text exposition
// format), plus the pages mounted on it (the status page under /status, agent/src/status/).
// Nothing here changes state; every other path or method is refused.
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { LullError, type Logger } from "@lull/shared";
import type { Registry } from "prom-client";
import type { HttpHandler } from "../status/handler.js";

export interface MetricsListener {
  /** `host:port` actually bound (the real port when 0 was asked). */
  address: string;
  port: number;
  close(): Promise<void>;
}

function splitAddress(address: string): { host: string; port: number } {
  const at = address.lastIndexOf(":");
  const host = address.slice(0, at).replace(/^\[(.*)\]$/, "$1");
  const port = Number(address.slice(at + 1));
  if (!host || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw new LullError("LULL_E_CONFIG_INVALID", `metrics.address: ${address} is not host:port (e.g. 127.0.0.1:9750)`);
  }
  return { host, port };
}

export async function listenMetrics(options: { address: string; registry: Registry; log: Logger; handlers?: readonly HttpHandler[] }): Promise<MetricsListener> {
  const { host, port } = splitAddress(options.address);
  const server: Server = createServer((req, res) => {
    // Other pages mounted here (the status page under /status) answer first.
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
      reject(new LullError("LULL_E_CONFIG_INVALID", `metrics.address: cannot listen on ${options.address}: ${err.code ?? err.message}`)),
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
