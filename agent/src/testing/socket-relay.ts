// A TCP address that relays to the agent's unix socket, for clients whose link a test cuts (a
// flaky network, an agent that becomes unreachable) while the agent itself keeps running.
import { createConnection, createServer, type Server, type Socket } from "node:net";

/** A TCP address that relays to a unix socket; `cut()` drops every open connection. */
export class SocketRelay {
  private constructor(
    private readonly server: Server,
    private readonly open: Set<Socket>,
    readonly address: string,
  ) {}

  static async start(socketPath: string, port = 0): Promise<SocketRelay> {
    const open = new Set<Socket>();
    const server = createServer((client) => {
      const upstream = createConnection(socketPath);
      for (const s of [client, upstream]) {
        open.add(s);
        s.on("close", () => open.delete(s));
        s.on("error", () => undefined);
      }
      client.on("close", () => upstream.destroy());
      upstream.on("close", () => client.destroy());
      client.pipe(upstream).pipe(client);
    });
    await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
    const { port: bound } = server.address() as { port: number };
    return new SocketRelay(server, open, `127.0.0.1:${bound}`);
  }

  cut(): void {
    for (const s of this.open) s.destroy();
  }

  async stop(): Promise<void> {
    this.cut();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
